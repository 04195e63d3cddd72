#pragma once

#include <cstdint>
#include <string_view>

namespace prefork {

// What a Range header asks of a representation of `size` bytes (RFC 9110 §14.1.2, §14.2).
struct ByteRange {
    enum class Kind { whole, part, unsatisfiable };
    Kind kind = Kind::whole;
    std::uint64_t first = 0, last = 0;  // of a part, inclusive
};

// One range of bytes ("bytes=0-99", "bytes=100-", "bytes=-100"): that part. A range that
// starts past the end: unsatisfiable (416). Anything else (another unit, several ranges, a
// malformed value) is ignored, as RFC 9110 allows: the whole representation (200).
ByteRange select_range(std::string_view header, std::uint64_t size);

}  // namespace prefork

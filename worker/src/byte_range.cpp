#include "byte_range.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>

namespace prefork {
namespace {

bool parse_number(std::string_view text, std::uint64_t& value) {
    if (text.empty()) return false;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
    }
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

ByteRange select_range(std::string_view header, std::uint64_t size) {
    constexpr std::string_view kUnit = "bytes=";
    if (header.size() < kUnit.size() || !boost::beast::iequals(header.substr(0, 6), kUnit)) {
        return {};
    }
    std::string_view spec = header.substr(kUnit.size());
    while (!spec.empty() && (spec.front() == ' ' || spec.front() == '\t')) spec.remove_prefix(1);
    while (!spec.empty() && (spec.back() == ' ' || spec.back() == '\t')) spec.remove_suffix(1);
    if (spec.find(',') != std::string_view::npos) return {};  // several: served whole
    auto dash = spec.find('-');
    if (dash == std::string_view::npos) return {};
    std::string_view first_text = spec.substr(0, dash), last_text = spec.substr(dash + 1);

    ByteRange unsatisfiable{ByteRange::Kind::unsatisfiable, 0, 0};
    if (first_text.empty()) {  // the last N bytes
        std::uint64_t suffix = 0;
        if (!parse_number(last_text, suffix)) return {};
        if (suffix == 0 || size == 0) return unsatisfiable;
        return {ByteRange::Kind::part, suffix >= size ? 0 : size - suffix, size - 1};
    }
    std::uint64_t first = 0, last = 0;
    if (!parse_number(first_text, first)) return {};
    if (last_text.empty()) {
        last = size == 0 ? 0 : size - 1;
    } else if (!parse_number(last_text, last) || last < first) {
        return {};
    }
    if (first >= size) return unsatisfiable;
    if (last >= size) last = size - 1;
    return {ByteRange::Kind::part, first, last};
}

}  // namespace prefork

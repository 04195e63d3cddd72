#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace prefork {

namespace detail {
constexpr std::array<bool, 256> token_table() {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c) {
        table[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                       std::string_view::npos;
    }
    return table;
}
inline constexpr std::array<bool, 256> kTokenChars = token_table();
}  // namespace detail

// A header field name: a token (RFC 9110 §5.1, §5.6.2).
inline bool is_field_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        if (!detail::kTokenChars[static_cast<unsigned char>(c)]) return false;
    }
    return true;
}

// A value that cannot end a header line early: no CR, LF or NUL. Eight bytes at a time,
// since every response's fields pass through here.
inline bool is_safe_field_value(std::string_view value) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL, kHighs = 0x8080808080808080ULL;
    auto has_zero_byte = [](std::uint64_t word) { return (word - kOnes) & ~word & kHighs; };
    std::size_t i = 0;
    for (; i + 8 <= value.size(); i += 8) {
        std::uint64_t word;
        std::memcpy(&word, value.data() + i, 8);
        if (has_zero_byte(word) | has_zero_byte(word ^ (kOnes * '\r')) |
            has_zero_byte(word ^ (kOnes * '\n')))
            return false;
    }
    for (; i < value.size(); ++i) {
        char c = value[i];
        if (c == '\r' || c == '\n' || c == '\0') return false;
    }
    return true;
}

}  // namespace prefork

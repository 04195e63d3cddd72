#pragma once

#include <string_view>

namespace prefork {

// A header field name: a token (RFC 9110 §5.1, §5.6.2).
inline bool is_field_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !digit &&
            std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
            return false;
    }
    return true;
}

// A value that cannot end a header line early: no CR, LF or NUL.
inline bool is_safe_field_value(std::string_view value) {
    for (char c : value) {
        if (c == '\r' || c == '\n' || c == '\0') return false;
    }
    return true;
}

}  // namespace prefork

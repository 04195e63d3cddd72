#include "response_head.hpp"

#include "field_syntax.hpp"

#include <boost/beast/core/string.hpp>

#include <charconv>

namespace prefork {

namespace http = boost::beast::http;

bool write_response_head(std::string& out, const Response::Message& message, const HeadFraming& how,
                         bool& keep_alive) {
    out.clear();
    out += how.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    char digits[24];
    auto [status_end, status_ec] =
        std::to_chars(digits, digits + sizeof digits, message.result_int());
    out.append(digits, status_end);
    out += ' ';
    out += message.reason();
    out += "\r\n";
    for (const auto& field : message) {
        switch (field.name()) {
            case http::field::connection:
                if (boost::beast::iequals(field.value(), "close")) keep_alive = false;
                continue;
            case http::field::server:
            case http::field::date:
            case http::field::content_length:
            case http::field::transfer_encoding:
                continue;
            case http::field::unknown:
                if (!is_field_name(field.name_string())) return false;
                break;
            default:
                break;
        }
        if (!is_safe_field_value(field.value())) return false;
        out += field.name_string();
        out += ": ";
        out += field.value();
        out += "\r\n";
    }
    out += "Server: prefork\r\nDate: ";
    out += how.date;
    out += "\r\n";
    if (how.framing == Framing::content_length) {
        auto [length_end, length_ec] =
            std::to_chars(digits, digits + sizeof digits, how.content_length);
        out += "Content-Length: ";
        out.append(digits, length_end);
        out += "\r\n";
    } else if (how.framing == Framing::chunked) {
        out += "Transfer-Encoding: chunked\r\n";
    }
    if (how.version == 10) {
        if (keep_alive) out += "Connection: keep-alive\r\n";
    } else if (!keep_alive) {
        out += "Connection: close\r\n";
    }
    out += "\r\n";
    return true;
}

}  // namespace prefork

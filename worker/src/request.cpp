#include <prefork/request.hpp>

namespace prefork {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (i + 2 >= text.size()) return std::nullopt;
            int high = hex_value(text[i + 1]), low = hex_value(text[i + 2]);
            if (high < 0 || low < 0) return std::nullopt;
            out += static_cast<char>(high * 16 + low);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

Request::Request(Message message) : message_(std::move(message)) {}

std::string_view Request::path() const {
    std::string_view target = message_.target();
    return target.substr(0, target.find('?'));
}

std::string_view Request::query_string() const {
    std::string_view target = message_.target();
    auto mark = target.find('?');
    return mark == std::string_view::npos ? std::string_view{} : target.substr(mark + 1);
}

std::optional<std::string> Request::query(std::string_view name) const {
    std::string_view rest = query_string();
    while (!rest.empty()) {
        auto amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        auto equals = pair.find('=');
        auto key = percent_decode(pair.substr(0, equals), true);
        if (!key || *key != name) continue;
        if (equals == std::string_view::npos) return std::string{};
        return percent_decode(pair.substr(equals + 1), true);
    }
    return std::nullopt;
}

std::string_view Request::param(std::string_view name) const {
    for (const auto& [key, value] : params_) {
        if (key == name) return value;
    }
    return {};
}

std::string_view Request::header(std::string_view name) const {
    auto found = message_.find(name);
    if (found == message_.end()) return {};
    return {found->value().data(), found->value().size()};
}

}  // namespace prefork

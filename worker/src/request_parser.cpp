#include "request_parser.hpp"

#include <boost/beast/core/string.hpp>

#include <array>
#include <cstring>
#include <limits>

namespace prefork {
namespace {

using boost::beast::iequals;

constexpr bool one_of(std::string_view set, int c) {
    return set.find(static_cast<char>(c)) != std::string_view::npos;
}

// Character classes of RFC 9110 §5.6.2 (tchar) and §5.5 (field-vchar, obs-text).
struct CharClasses {
    std::array<bool, 256> token{};
    std::array<bool, 256> value{};   // what a field value may hold (HTAB, SP, VCHAR, obs-text)
    std::array<bool, 256> target{};  // VCHAR: the request target is ASCII (RFC 3986)
    std::array<bool, 256> host{};    // reg-name: unreserved, sub-delims and '%'
    std::array<bool, 256> hex{};

    constexpr CharClasses() {
        for (int c = 0; c < 256; ++c) {
            bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            bool digit = c >= '0' && c <= '9';
            token[c] = alpha || digit || one_of("!#$%&'*+-.^_`|~", c);
            value[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
            target[c] = c > 0x20 && c < 0x7f;
            host[c] = alpha || digit || one_of("-._~!$&'()*+,;=%", c);
            hex[c] = digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        }
    }
};
constexpr CharClasses kChars;

bool is(const std::array<bool, 256>& table, char c) {
    return table[static_cast<unsigned char>(c)];
}

bool all_of(std::string_view text, const std::array<bool, 256>& table) {
    for (char c : text) {
        if (!is(table, c)) return false;
    }
    return true;
}

bool is_token(std::string_view text) {
    return !text.empty() && all_of(text, kChars.token);
}

std::string_view trim_ows(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): a bracketed IP literal or a
// reg-name (which covers IPv4 addresses), and a port of digits. One pass: every request
// has one.
bool is_authority(std::string_view text) {
    std::size_t i = 0;
    if (text.starts_with('[')) {
        for (i = 1; i < text.size() && text[i] != ']'; ++i) {
            if (!is(kChars.hex, text[i]) && text[i] != ':' && text[i] != '.') return false;
        }
        if (i == text.size() || i == 1) return false;
        ++i;  // past ']'
    } else {
        for (; i < text.size() && text[i] != ':'; ++i) {
            if (!is(kChars.host, text[i])) return false;
            if (text[i] == '%' && (i + 2 >= text.size() || !is(kChars.hex, text[i + 1]) ||
                                   !is(kChars.hex, text[i + 2])))
                return false;
        }
    }
    if (i == text.size()) return true;
    if (text[i] != ':' || text.size() - i - 1 > 5) return false;
    for (++i; i < text.size(); ++i) {
        if (text[i] < '0' || text[i] > '9') return false;
    }
    return true;
}

// Fields that framing, routing or authentication depend on: never taken from a trailer
// (RFC 9110 §6.5.1).
bool forbidden_in_trailer(std::string_view name) {
    static constexpr std::string_view kNames[] = {"host",
                                                  "content-length",
                                                  "transfer-encoding",
                                                  "connection",
                                                  "keep-alive",
                                                  "te",
                                                  "trailer",
                                                  "upgrade",
                                                  "expect",
                                                  "authorization",
                                                  "proxy-authorization",
                                                  "cookie",
                                                  "content-type",
                                                  "content-encoding",
                                                  "content-range",
                                                  "range",
                                                  "cache-control",
                                                  "max-forwards",
                                                  "if-match",
                                                  "if-none-match",
                                                  "if-modified-since",
                                                  "if-unmodified-since",
                                                  "if-range",
                                                  "pragma",
                                                  "proxy-connection",
                                                  "set-cookie",
                                                  "www-authenticate",
                                                  "proxy-authenticate"};
    for (std::string_view forbidden : kNames) {
        if (iequals(name, forbidden)) return true;
    }
    return false;
}

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112
// §7.1.1): whitespace only before a ';' or '=' or after one, never at the end of the line.
bool is_chunk_extension(std::string_view text) {
    std::size_t i = 0;
    auto skip_ws = [&] {
        std::size_t start = i;
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        return i > start;
    };
    auto take_token = [&] {
        std::size_t start = i;
        while (i < text.size() && is(kChars.token, text[i])) ++i;
        return i > start;
    };
    auto take_quoted = [&] {
        if (i == text.size() || text[i] != '"') return false;
        for (++i; i < text.size();) {
            char c = text[i++];
            if (c == '"') return true;
            if (c == '\\') {
                if (i == text.size()) return false;
                c = text[i++];
            }
            if (!is(kChars.value, c)) return false;
        }
        return false;
    };
    while (i < text.size()) {
        skip_ws();
        if (i == text.size() || text[i] != ';') return false;
        ++i;
        skip_ws();
        if (!take_token()) return false;
        std::size_t after_name = i;
        skip_ws();
        if (i < text.size() && text[i] == '=') {
            ++i;
            skip_ws();
            if (!take_token() && !take_quoted()) return false;
        } else if (i == text.size() && i > after_name) {
            return false;  // whitespace at the end
        }
    }
    return true;
}

}  // namespace

RequestParser::RequestParser(const ParserLimits& limits) : limits_(limits) {}

void RequestParser::reset() {
    if (!message_taken_) message_ = {};
    message_taken_ = false;
    scanned_ = head_start_ = 0;
    line_start_ = 0;
    empty_lines_ = 0;
    have_request_line_ = false;
    authority_.clear();
    absolute_form_ = false;
    host_count_ = content_length_count_ = 0;
    has_transfer_encoding_ = false;
    transfer_encoding_.clear();
    chunked_ = false;
    content_length_ = 0;
    content_length_overflow_ = false;
    keep_alive_ = true;
    connection_close_ = connection_keep_alive_ = false;
    expects_continue_ = false;
    body_received_ = 0;
    chunk_state_ = ChunkState::size_line;
    chunk_line_.clear();
    chunk_left_ = 0;
    trailer_bytes_ = 0;
    status_ = 0;
    reason_ = {};
}

RequestParser::Result RequestParser::refuse(int status, std::string_view reason) {
    status_ = status;
    reason_ = reason;
    return Result::refused;
}

// Every line ends in CRLF; a bare LF is refused (RFC 9112 §2.2 lets a recipient accept
// one, but a bare LF is how a request is smuggled past a proxy that does not). Each line is
// checked as soon as it is complete, so garbage is refused without waiting for the rest.
RequestParser::Result RequestParser::parse_head(std::string_view data, std::size_t& consumed) {
    consumed = 0;
    while (scanned_ < data.size()) {
        const void* found = std::memchr(data.data() + scanned_, '\n', data.size() - scanned_);
        if (found == nullptr) {
            scanned_ = data.size();
            break;
        }
        std::size_t lf = static_cast<std::size_t>(static_cast<const char*>(found) - data.data());
        scanned_ = lf + 1;
        if (lf == line_start_ || data[lf - 1] != '\r') return refuse(400, "bare LF");
        std::string_view line = data.substr(line_start_, lf - 1 - line_start_);
        line_start_ = lf + 1;
        if (lf + 1 - head_start_ > limits_.header_limit) {
            return have_request_line_ ? refuse(431, "header too large")
                                      : refuse(414, "request line too long");
        }
        if (!have_request_line_) {
            if (line.empty()) {  // RFC 9112 §2.2: empty lines before a request are ignored
                if (++empty_lines_ > limits_.max_empty_lines) {
                    return refuse(400, "too many empty lines before the request line");
                }
                head_start_ = line_start_;
                continue;
            }
            have_request_line_ = true;
            if (auto result = parse_request_line(line); result != Result::done) return result;
            continue;
        }
        if (line.empty()) {  // the end of the head
            consumed = lf + 1;
            return check_framing();
        }
        if (auto result = parse_field(line); result != Result::done) return result;
    }
    if (data.size() - head_start_ > limits_.header_limit) {
        return have_request_line_ ? refuse(431, "header too large")
                                  : refuse(414, "request line too long");
    }
    return Result::need_more;
}

// method SP request-target SP HTTP-version (RFC 9112 §3)
RequestParser::Result RequestParser::parse_request_line(std::string_view line) {
    auto first_space = line.find(' ');
    if (first_space == std::string_view::npos) return refuse(400, "malformed request line");
    std::string_view method = line.substr(0, first_space);
    std::string_view rest = line.substr(first_space + 1);
    auto second_space = rest.find(' ');
    if (second_space == std::string_view::npos) return refuse(400, "malformed request line");
    std::string_view target = rest.substr(0, second_space);
    std::string_view version = rest.substr(second_space + 1);
    if (!is_token(method)) return refuse(400, "method is not a token");

    if (version == "HTTP/1.1") {
        message_.version(11);
    } else if (version == "HTTP/1.0") {
        message_.version(10);
    } else if (version.size() == 8 && version.starts_with("HTTP/") && version[5] >= '0' &&
               version[5] <= '9' && version[6] == '.' && version[7] >= '0' && version[7] <= '9') {
        return refuse(505, "HTTP version not supported");
    } else {
        return refuse(400, "malformed HTTP version");
    }

    http::verb verb = http::string_to_verb(method);
    if (verb == http::verb::unknown) {
        message_.method_string(method);
    } else {
        message_.method(verb);
    }
    return parse_target(target);
}

// origin-form, absolute-form (http and https only: prefork is no proxy, and an absolute
// URI names the resource as well as a path would), asterisk-form for OPTIONS; an
// authority-form (CONNECT) is refused (RFC 9112 §3.2).
RequestParser::Result RequestParser::parse_target(std::string_view target) {
    if (target.empty() || !all_of(target, kChars.target)) {
        return refuse(400, "request target holds bytes outside visible ASCII");
    }
    if (target.find('#') != std::string_view::npos) {  // no form of target has a fragment
        return refuse(400, "request target holds a fragment");
    }
    if (target.front() == '/') {
        message_.target(target);
        return Result::done;
    }
    if (target == "*") {
        if (message_.method() != http::verb::options) return refuse(400, "'*' is for OPTIONS only");
        message_.target(target);
        return Result::done;
    }
    std::size_t after_scheme = 0;
    if (target.size() > 7 && iequals(target.substr(0, 7), "http://")) {
        after_scheme = 7;
    } else if (target.size() > 8 && iequals(target.substr(0, 8), "https://")) {
        after_scheme = 8;
    } else {
        return refuse(400, "request target is neither origin-form nor absolute-form");
    }
    std::string_view rest = target.substr(after_scheme);
    auto path_start = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, path_start);
    if (authority.empty() || !is_authority(authority)) {
        return refuse(400, "absolute-form target has an invalid authority");
    }
    std::string_view path =
        path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
    authority_.assign(authority);
    absolute_form_ = true;
    if (path.empty() || path.front() != '/') {
        std::string origin(1, '/');  // "http://h?q" is "/?q"
        origin.append(path.data(), path.size());
        message_.target(origin);
    } else {
        message_.target(path);
    }
    return Result::done;
}

// field-name ":" OWS field-value OWS (RFC 9112 §5)
RequestParser::Result RequestParser::parse_field(std::string_view line) {
    if (line.front() == ' ' || line.front() == '\t') return refuse(400, "obs-fold");
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return refuse(400, "field line without a colon");
    std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return refuse(400, "field name is not a token");
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!all_of(value, kChars.value)) return refuse(400, "control character in a field value");

    http::field field = http::string_to_field(name);
    switch (field) {
        case http::field::host:
            ++host_count_;
            if (!value.empty() && !is_authority(value)) return refuse(400, "invalid Host");
            break;
        case http::field::content_length: {
            ++content_length_count_;
            if (value.empty()) return refuse(400, "Content-Length is not a number");
            std::uint64_t length = 0;
            for (char c : value) {
                if (c < '0' || c > '9') return refuse(400, "Content-Length is not one number");
                if (length > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) {
                    content_length_overflow_ = true;
                } else {
                    length = length * 10 + static_cast<std::uint64_t>(c - '0');
                }
            }
            content_length_ = length;
            break;
        }
        case http::field::transfer_encoding:
            has_transfer_encoding_ = true;
            if (!transfer_encoding_.empty()) transfer_encoding_ += ',';
            transfer_encoding_ += value;
            break;
        case http::field::connection:
            for (std::string_view rest = value; !rest.empty();) {
                auto comma = rest.find(',');
                std::string_view option = trim_ows(rest.substr(0, comma));
                rest =
                    comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
                if (iequals(option, "close")) connection_close_ = true;
                if (iequals(option, "keep-alive")) connection_keep_alive_ = true;
            }
            break;
        case http::field::expect:
            if (iequals(value, "100-continue")) expects_continue_ = true;
            break;
        default:
            break;
    }
    message_.insert(field, name, value);
    return Result::done;
}

// How the body is framed (RFC 9112 §6), and the request's Host.
RequestParser::Result RequestParser::check_framing() {
    bool http11 = message_.version() == 11;
    if (http11 && host_count_ == 0) return refuse(400, "HTTP/1.1 request without Host");
    if (host_count_ > 1) return refuse(400, "more than one Host");
    if (absolute_form_) message_.set(http::field::host, authority_);  // RFC 9112 §3.2.2
    if (content_length_count_ > 1) return refuse(400, "more than one Content-Length");

    if (has_transfer_encoding_) {
        if (!http11) return refuse(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (content_length_count_ > 0) {
            return refuse(400, "both Transfer-Encoding and Content-Length");
        }
        // Strict: an empty list element is refused, not skipped (RFC 9110 §5.6.1 lets a
        // recipient skip them; ", chunked" is also a way to smuggle past one that does not).
        bool other_codings = false;
        std::string_view rest = transfer_encoding_;
        while (true) {
            auto comma = rest.find(',');
            std::string_view coding = trim_ows(rest.substr(0, comma));
            bool last = comma == std::string_view::npos;
            if (coding.empty()) return refuse(400, "empty Transfer-Encoding element");
            auto semicolon = coding.find(';');  // a coding with parameters: not chunked
            if (!is_token(trim_ows(coding.substr(0, semicolon)))) {
                return refuse(400, "Transfer-Encoding is not a list of codings");
            }
            bool is_chunked = semicolon == std::string_view::npos && iequals(coding, "chunked");
            if (last) {
                if (!is_chunked) return refuse(400, "Transfer-Encoding does not end in chunked");
                break;
            }
            if (is_chunked) return refuse(400, "chunked is not the last coding");
            other_codings = true;
            rest = rest.substr(comma + 1);
        }
        if (other_codings) return refuse(501, "a transfer coding other than chunked");
        chunked_ = true;
    } else if (content_length_overflow_ || content_length_ > limits_.body_limit) {
        return refuse(413, "Content-Length above the body limit");
    }

    keep_alive_ = http11 ? !connection_close_ : connection_keep_alive_ && !connection_close_;
    if (!http11) expects_continue_ = false;
    return Result::done;
}

RequestParser::Result RequestParser::parse_body(std::string_view data, std::size_t& consumed,
                                                std::string& body) {
    consumed = 0;
    if (chunked_) return parse_chunked(data, consumed, body);
    std::uint64_t left = content_length_ - body_received_;
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, data.size()));
    body.append(data.data(), take);
    body_received_ += take;
    consumed = take;
    return body_received_ == content_length_ ? Result::done : Result::need_more;
}

// chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1). Lines (chunk-size
// lines, trailer fields) split across reads wait in chunk_line_, within their limits.
RequestParser::Result RequestParser::parse_chunked(std::string_view data, std::size_t& consumed,
                                                   std::string& body) {
    std::size_t pos = 0;
    while (pos < data.size()) {
        switch (chunk_state_) {
            case ChunkState::data: {
                std::size_t take = static_cast<std::size_t>(
                    std::min<std::uint64_t>(chunk_left_, data.size() - pos));
                body.append(data.data() + pos, take);
                pos += take;
                chunk_left_ -= take;
                body_received_ += take;
                if (chunk_left_ == 0) chunk_state_ = ChunkState::data_end;
                break;
            }
            case ChunkState::data_end: {
                char expected = chunk_line_.empty() ? '\r' : '\n';
                if (data[pos++] != expected) return refuse(400, "chunk data not followed by CRLF");
                if (expected == '\r') {
                    chunk_line_.assign(1, '\r');
                } else {
                    chunk_line_.clear();
                    chunk_state_ = ChunkState::size_line;
                }
                break;
            }
            case ChunkState::size_line:
            case ChunkState::trailer: {
                bool trailer = chunk_state_ == ChunkState::trailer;
                std::size_t bound = trailer ? limits_.trailer_limit -
                                                  std::min(limits_.trailer_limit, trailer_bytes_)
                                            : limits_.chunk_line_limit;
                const void* found = std::memchr(data.data() + pos, '\n', data.size() - pos);
                std::size_t end =
                    found ? static_cast<std::size_t>(static_cast<const char*>(found) - data.data())
                          : data.size();
                if (chunk_line_.size() + (end - pos) > bound) {
                    return trailer ? refuse(431, "trailer too large")
                                   : refuse(400, "chunk-size line too long");
                }
                if (!found) {
                    chunk_line_.append(data.data() + pos, data.size() - pos);
                    pos = data.size();
                    break;
                }
                std::string_view line;
                if (chunk_line_.empty()) {
                    line = data.substr(pos, end - pos);
                } else {
                    chunk_line_.append(data.data() + pos, end - pos);
                    line = chunk_line_;
                }
                pos = end + 1;
                if (line.empty() || line.back() != '\r') return refuse(400, "bare LF");
                line.remove_suffix(1);
                Result result = trailer ? parse_trailer_line(line) : parse_chunk_size_line(line);
                chunk_line_.clear();
                if (result == Result::refused) return result;
                if (chunk_state_ == ChunkState::done) {
                    consumed = pos;
                    return Result::done;
                }
                break;
            }
            case ChunkState::done:
                consumed = pos;
                return Result::done;
        }
    }
    consumed = pos;
    return Result::need_more;
}

// chunk-size [ chunk-ext ]: hexadecimal digits, nothing before them, extensions bounded
// by the line's limit and otherwise ignored.
RequestParser::Result RequestParser::parse_chunk_size_line(std::string_view line) {
    std::uint64_t size = 0;
    std::size_t digits = 0;
    while (digits < line.size() && is(kChars.hex, line[digits])) {
        if (size > (std::numeric_limits<std::uint64_t>::max() >> 4)) {
            return refuse(400, "chunk size overflows");
        }
        char c = line[digits++];
        int value = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        size = size * 16 + static_cast<std::uint64_t>(value);
    }
    if (digits == 0) return refuse(400, "chunk size is not hexadecimal");
    if (!is_chunk_extension(line.substr(digits))) return refuse(400, "malformed chunk extension");
    if (size == 0) {
        chunk_state_ = ChunkState::trailer;
        return Result::done;
    }
    if (size > limits_.body_limit - std::min(limits_.body_limit, body_received_)) {
        return refuse(413, "chunked body above the body limit");
    }
    chunk_left_ = size;
    chunk_state_ = ChunkState::data;
    return Result::done;
}

// A trailer field is checked as a header field would be, and then dropped: RFC 9110
// §6.5.1 forbids merging it into the header, and prefork's handlers see the header only.
RequestParser::Result RequestParser::parse_trailer_line(std::string_view line) {
    if (line.empty()) {
        chunk_state_ = ChunkState::done;
        return Result::done;
    }
    trailer_bytes_ += line.size() + 2;
    if (trailer_bytes_ > limits_.trailer_limit) return refuse(431, "trailer too large");
    if (line.front() == ' ' || line.front() == '\t') return refuse(400, "obs-fold in a trailer");
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return refuse(400, "trailer line without a colon");
    std::string_view name = line.substr(0, colon);
    if (!is_token(name)) return refuse(400, "trailer name is not a token");
    if (!all_of(trim_ows(line.substr(colon + 1)), kChars.value)) {
        return refuse(400, "control character in a trailer value");
    }
    if (forbidden_in_trailer(name)) return refuse(400, "a field that may not be a trailer");
    return Result::done;
}

}  // namespace prefork

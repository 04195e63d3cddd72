// The request parser against RFC 9112 and RFC 9110: raw requests, each with the verdict it
// must get. `served` requests are answered in order and leave the connection open (a last
// request then proves that nothing was mis-framed); a `refused` request gets one answer with
// Connection: close, then the connection ends, and the valid request pipelined after it is
// never answered. "nginx:" comments say where nginx 1.22 judges the same bytes otherwise.

#include "http_client.hpp"
#include "prefork_server.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::testing {
namespace {

using namespace std::string_literals;  // "...\0..."s keeps the NUL bytes

// What a request must get: the statuses of the responses, in order, and whether the last
// is a refusal (Connection: close, then the end of the connection).
struct Verdict {
    std::vector<int> statuses;
    bool refuses = false;
};

Verdict served(std::vector<int> statuses) {
    return {std::move(statuses), false};
}
Verdict refused(int status) {
    return {{status}, true};
}
// Pipelined requests of which the last is refused.
Verdict served_then_refused(std::vector<int> statuses, int status) {
    statuses.push_back(status);
    return {std::move(statuses), true};
}

struct Vector {
    Vector(std::string name, std::string bytes, Verdict verdict,
           std::optional<std::string> echoed = std::nullopt)
        : name(std::move(name)),
          bytes(std::move(bytes)),
          verdict(std::move(verdict)),
          echoed(std::move(echoed)) {}

    std::string name;
    std::string bytes;
    Verdict verdict;
    std::optional<std::string> echoed;  // the first response's body, for POST /echo
};

// Follows a refused request: it must never be answered.
const std::string kNext = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
// Follows what was served, on the same connection.
const std::string kLast = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
// A request that a body may carry; when it is read as a request, it gets a 404.
const std::string kSmuggled = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";

// GET / on HTTP/1.1 with Host: x and these field lines (each ending in CRLF).
std::string get(std::string_view fields) {
    return "GET / HTTP/1.1\r\nHost: x\r\n" + std::string(fields) + "\r\n";
}
// POST /echo with Host: x, these field lines and these body bytes.
std::string post(std::string_view fields, std::string_view body) {
    return "POST /echo HTTP/1.1\r\nHost: x\r\n" + std::string(fields) + "\r\n" + std::string(body);
}
std::string with_length(std::string_view body) {
    return post("Content-Length: " + std::to_string(body.size()) + "\r\n", body);
}
std::string chunked(std::string_view body, std::string_view more_fields = "") {
    return post("Transfer-Encoding: chunked\r\n" + std::string(more_fields), body);
}
std::string hex(std::size_t n) {
    char text[32];
    std::snprintf(text, sizeof(text), "%zx", n);
    return text;
}
std::string repeat(std::string_view part, int times) {
    std::string all;
    for (int i = 0; i < times; ++i) all += part;
    return all;
}

// Bytes as a reader can see them in a failure message.
std::string printable(std::string_view bytes) {
    std::string text;
    for (unsigned char c : bytes.substr(0, 400)) {
        if (c == '\r') {
            text += "\\r";
        } else if (c == '\n') {
            text += "\\n\n";
        } else if (c < 0x20 || c >= 0x7F) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\x%02x", c);
            text += escaped;
        } else {
            text += static_cast<char>(c);
        }
    }
    if (bytes.size() > 400) text += "... (" + std::to_string(bytes.size()) + " bytes)";
    return text;
}

struct Response {
    int status = 0;
    bool closes = false;  // Connection: close
    std::string body;
};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

bool contains_token(std::string_view value, std::string_view token) {
    std::string lower;
    for (char c : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower.find(token) != std::string::npos;
}

// The body of a chunked response at the start of `data`; nullopt while it is incomplete.
std::optional<std::string> dechunk(std::string_view data, std::size_t& used) {
    std::string body;
    std::size_t at = 0;
    for (;;) {
        auto line_end = data.find("\r\n", at);
        if (line_end == std::string_view::npos) return std::nullopt;
        std::size_t size =
            std::strtoull(std::string(data.substr(at, line_end - at)).c_str(), nullptr, 16);
        at = line_end + 2;
        if (size == 0) {  // trailer lines, up to the empty one
            for (;;) {
                auto end = data.find("\r\n", at);
                if (end == std::string_view::npos) return std::nullopt;
                bool empty = end == at;
                at = end + 2;
                if (empty) {
                    used = at;
                    return body;
                }
            }
        }
        if (data.size() < at + size + 2) return std::nullopt;
        body += data.substr(at, size);
        at += size + 2;
    }
}

// Parses one response at the start of `data`; nullopt while it is incomplete (a body that
// runs to the end of the connection is complete once `closed`). `used`: its length.
std::optional<Response> parse_response(std::string_view data, bool closed, std::size_t& used) {
    auto head_end = data.find("\r\n\r\n");
    if (head_end == std::string_view::npos) return std::nullopt;
    Response response;
    std::string_view head = data.substr(0, head_end);
    if (head.size() < 12 || !(head.starts_with("HTTP/1.1 ") || head.starts_with("HTTP/1.0 "))) {
        response.status = -1;  // not a response: reported with the bytes
        used = data.size();
        return response;
    }
    response.status = std::atoi(std::string(head.substr(9, 3)).c_str());
    std::optional<std::size_t> length;
    bool chunked_body = false;
    for (std::size_t at = head.find("\r\n"); at != std::string_view::npos;) {
        auto next = head.find("\r\n", at + 2);
        std::string_view line = head.substr(
            at + 2, next == std::string_view::npos ? std::string_view::npos : next - at - 2);
        at = next;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
        if (iequals(name, "Content-Length"))
            length = std::strtoull(std::string(value).c_str(), nullptr, 10);
        if (iequals(name, "Transfer-Encoding")) chunked_body = contains_token(value, "chunked");
        if (iequals(name, "Connection")) response.closes = contains_token(value, "close");
    }
    std::string_view rest = data.substr(head_end + 4);
    if (response.status < 200 || response.status == 204 || response.status == 304) {
        used = head_end + 4;
    } else if (chunked_body) {
        std::size_t body_used = 0;
        auto body = dechunk(rest, body_used);
        if (!body) return std::nullopt;
        response.body = *body;
        used = head_end + 4 + body_used;
    } else if (length) {
        if (rest.size() < *length) return std::nullopt;
        response.body = rest.substr(0, *length);
        used = head_end + 4 + *length;
    } else {
        if (!closed) return std::nullopt;
        response.body = rest;
        used = data.size();
    }
    return response;
}

struct Exchange {
    std::vector<Response> responses;
    bool closed = false;   // the server ended the connection
    std::string received;  // every byte, for the failure messages

    std::vector<int> statuses() const {
        std::vector<int> all;
        for (const auto& response : responses) all.push_back(response.status);
        return all;
    }
};

// Reads until `count` responses have come, or the server ended the connection, or 5 s.
Exchange read_responses(int fd, std::size_t count) {
    Exchange exchange;
    std::size_t parsed = 0;
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (exchange.responses.size() < count && !exchange.closed) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd ready{fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&ready, 1, static_cast<int>(left.count())) <= 0) break;
        char buffer[65536];
        ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
            exchange.closed = true;  // EOF, or a reset after the answer
        } else {
            exchange.received.append(buffer, static_cast<std::size_t>(n));
        }
        std::size_t used = 0;
        while (exchange.responses.size() < count && parsed < exchange.received.size()) {
            auto response = parse_response(std::string_view(exchange.received).substr(parsed),
                                           exchange.closed, used);
            if (!response) break;
            exchange.responses.push_back(std::move(*response));
            parsed += used;
        }
    }
    return exchange;
}

// Writes all of `bytes`; a server that refuses early may end the connection before it has
// read them all, and what it answered is still to be read.
void send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

void expect_verdict(std::uint16_t port, const Vector& vector) {
    HttpConnection connection(port);
    int fd = connection.native_handle();
    send_all(fd, vector.bytes);
    const Verdict& verdict = vector.verdict;
    auto got = read_responses(
        fd, verdict.refuses ? std::numeric_limits<std::size_t>::max() : verdict.statuses.size());
    std::string seen =
        "\nsent:\n" + printable(vector.bytes) + "\nreceived:\n" + printable(got.received);
    EXPECT_EQ(got.statuses(), verdict.statuses) << vector.name << seen;
    if (verdict.refuses) {
        EXPECT_TRUE(got.closed) << vector.name << ": the connection stayed open" << seen;
        EXPECT_TRUE(!got.responses.empty() && got.responses.back().closes)
            << vector.name << ": the refusal does not say Connection: close" << seen;
        return;
    }
    if (vector.echoed && !got.responses.empty()) {
        EXPECT_EQ(got.responses.front().body, *vector.echoed) << vector.name << seen;
    }
    if (got.statuses() != verdict.statuses) return;
    if (got.closed) {
        ADD_FAILURE() << vector.name << ": the connection did not stay open" << seen;
        return;
    }
    send_all(fd, kLast);
    auto last = read_responses(fd, std::numeric_limits<std::size_t>::max());
    std::string last_seen = "\nafter:\n" + printable(vector.bytes) + "\nthe last request got:\n" +
                            printable(last.received);
    EXPECT_EQ(last.statuses(), std::vector<int>{200}) << vector.name << last_seen;
    if (!last.responses.empty()) {
        EXPECT_EQ(last.responses.front().body, "Hello, World!") << vector.name << last_seen;
    }
}

class Conformance : public ::testing::Test {
  protected:
    // One server for every vector: body limit 1000 bytes, header limit the default 16384.
    static void SetUpTestSuite() {
        server_ =
            std::make_unique<PreforkServer>(Loopback{1, {"--env", "PREFORK_BODY_LIMIT=1000"}});
    }
    static void TearDownTestSuite() { server_.reset(); }

    void SetUp() override { ASSERT_TRUE(server_) << "the server did not start"; }

    static void expect_verdicts(const std::vector<Vector>& vectors) {
        for (const auto& vector : vectors) expect_verdict(server_->port(), vector);
    }

    static inline std::unique_ptr<PreforkServer> server_;
};

// RFC 9112 §3: request-line = method SP request-target SP HTTP-version; §2.2: empty lines
// before it may be ignored; §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT.
std::vector<Vector> request_line_vectors() {
    return {
        {"origin-form GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", served({200})},
        {"HTTP/1.0 with keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
         served({200})},
        {"unknown path", "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", served({404})},
        {"known path, other method", "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", served({405})},
        // nginx: 400 (its methods are A-Z, '_' and '-'); RFC 9110 §9.1: a method is any token.
        {"method of every token character", "!#$%&'*+-.^_`|~09AZaz / HTTP/1.1\r\nHost: x\r\n\r\n",
         served({405})},
        // nginx: 400; RFC 9110 §9.1: methods are case-sensitive tokens, so `get` is a method this
        // path lacks.
        {"lower-case method is another method", "get / HTTP/1.1\r\nHost: x\r\n\r\n", served({405})},
        {"one empty line before", "\r\n" + kNext, served({200})},
        {"eight empty lines before", repeat("\r\n", 8) + kNext, served({200})},
        // nginx: served (it skips any number); RFC 9112 §2.2 asks to ignore at least one, and a
        // bound keeps CRLFs from holding a connection.
        {"nine empty lines before", repeat("\r\n", 9) + kNext + kNext, refused(400)},
        {"empty line after a body, before the next request", with_length("hello") + "\r\n" + kNext,
         served({200, 200}), "hello"},
        // nginx: served (skips a bare LF); RFC 9112 §2.2 allows, but does not require, a bare LF as
        // a line end: refused.
        {"bare LF empty line before", "\n" + kNext + kNext, refused(400)},
        // nginx: served; RFC 9112 §3 lets a recipient split on any whitespace, but the grammar is
        // one SP, and parsers that split differently disagree on the target.
        {"two SP after the method", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // nginx: served (as above); RFC 9112 §3: one SP between the parts.
        {"two SP before the version", "GET /  HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"HTAB as a separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"SP before the method", " GET / HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // nginx: served (ignores trailing SP); RFC 9112 §3: the line ends right after HTTP-version.
        {"SP after the version", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"separator in the method", "GE(T / HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"byte above 0x7F in the method", "G\xc3\x89T / HTTP/1.1\r\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        // nginx: answers as HTTP/0.9 (the body alone, no status line) and closes; RFC 9112 §3
        // requires HTTP-version, and an invalid request-line gets 400.
        {"no version", "GET /\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"only a method", "GET\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"version without a minor", "GET / HTTP/1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // nginx: served as HTTP/1.1; RFC 9112 §2.3: HTTP-version is "HTTP/" DIGIT "." DIGIT,
        // so 1.10 is malformed.
        {"version with a two-digit minor", "GET / HTTP/1.10\r\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"version with a letter", "GET / HTTP/1.x\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n" + kNext, refused(505)},
        // nginx: served as HTTP/1.1, which RFC 9110 §2.5 recommends (SHOULD) for a higher minor
        // version; 505 is this parser's stricter choice (§15.6.6): the lead's call.
        {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n" + kNext, refused(505)},
        // nginx: 400; a well-formed version this server does not implement is 505 (RFC 9110
        // §15.6.6).
        {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: x\r\n\r\n" + kNext, refused(505)},
        {"HTTP/3.0", "GET / HTTP/3.0\r\nHost: x\r\n\r\n" + kNext, refused(505)},
        // nginx: served; RFC 9112 §2.2 only allows a bare LF as a line end, and a front end that
        // does not frames these bytes otherwise (§11.2): refused.
        {"request line ended by a bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"request line ended by a bare CR", "GET / HTTP/1.1\rHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"target over the header limit, no CRLF", "GET /" + std::string(17000, 'a'), refused(414)},
        {"method over the header limit, no CRLF", std::string(17000, 'A'), refused(414)},
    };
}

// RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT only) and asterisk-form
// (OPTIONS only); RFC 3986 §2: a URI is ASCII without CTLs or spaces.
std::vector<Vector> target_vectors() {
    return {
        {"origin-form with a query", "GET /?a=b&c HTTP/1.1\r\nHost: x\r\n\r\n", served({200})},
        {"origin-form path with a query", "GET /pid?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
         served({200})},
        {"absolute-form http", "GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
         served({200})},
        {"absolute-form https with a port",
         "GET https://h:8080/pid HTTP/1.1\r\nHost: h:8080\r\n\r\n", served({200})},
        {"absolute-form with an empty path",
         "GET http://localhost HTTP/1.1\r\nHost: localhost\r\n\r\n", served({200})},
        {"absolute-form with an empty path and a query",
         "GET http://localhost?a=b HTTP/1.1\r\nHost: localhost\r\n\r\n", served({200})},
        // RFC 3986 §3.1, RFC 9110 §4.2.3: the scheme and host are case-insensitive.
        {"absolute-form in upper case", "GET HTTP://LOCALHOST/ HTTP/1.1\r\nHost: x\r\n\r\n",
         served({200})},
        {"absolute-form to an unknown path",
         "GET http://localhost/nowhere HTTP/1.1\r\nHost: "
         "localhost\r\n\r\n",
         served({404})},
        // nginx: 400 (no asterisk-form); RFC 9112 §3.2.4 defines `*` for a server-wide OPTIONS.
        {"asterisk-form with OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", served({200})},
        // nginx: served (ignores the scheme); this server is the origin of http and https URIs only
        // (RFC 9110 §4.2, §7.4).
        {"absolute-form ftp", "GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // RFC 9110 §4.2.4: userinfo in an http(s) URI is an error.
        {"absolute-form with userinfo", "GET http://user@x/ HTTP/1.1\r\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"asterisk-form with GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"asterisk and more", "OPTIONS *x HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"authority-form with GET", "GET example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"authority-form with CONNECT",
         "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" + kNext, refused(400)},
        {"relative path", "GET foo/bar HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"only a query", "GET ?a=b HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // nginx: served (404: it takes raw bytes); a request-target is a URI (RFC 9112 §3.2), which
        // is ASCII with other bytes percent-encoded (RFC 3986 §2.1).
        {"byte 0x80 in the path", "GET /\x80 HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // nginx: served (404), as above.
        {"byte 0xFF in the path", "GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        // nginx: served, as above: RFC 3986 §3.4 has no raw non-ASCII bytes in a query either.
        {"UTF-8 in the query", "GET /?q=caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"NUL in the path", "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n"s + kNext, refused(400)},
        {"HTAB in the path", "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
        {"control byte in the path",
         "GET /a\x01"
         "b HTTP/1.1\r\nHost: x\r\n\r\n" +
             kNext,
         refused(400)},
        {"DEL in the path",
         "GET /a\x7f"
         "b HTTP/1.1\r\nHost: x\r\n\r\n" +
             kNext,
         refused(400)},
        {"SP in the path", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n" + kNext, refused(400)},
    };
}

// RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, no whitespace before the
// colon, no obs-fold (§5.2); RFC 9110 §5.5: no CR, LF or NUL in a value (other CTLs are not
// field-vchar either); §2.2: lines end in CRLF.
std::vector<Vector> field_vectors() {
    return {
        {"UTF-8 in a value", get("X-Name: caf\xc3\xa9\r\n"), served({200})},
        {"bytes 0x80 and 0xFF in a value", get("X: \x80\xff\r\n"), served({200})},
        {"HTAB inside a value", get("X: a\tb\r\n"), served({200})},
        {"OWS around a value", get("X: \t a \t\r\n"), served({200})},
        {"empty value", get("X:\r\n"), served({200})},
        {"every token character in a name", get("!#$%&'*+-.^_`|~09AZaz: v\r\n"), served({200})},
        {"a hundred fields", get(repeat("X-Field: value\r\n", 100)), served({200})},
        {"SP in a name", get("Bad Name: x\r\n") + kNext, refused(400)},
        // nginx: served (drops the field: ignore_invalid_headers); RFC 9110 §5.1: a name is a
        // token, and a field one parser drops and another reads is a smuggling vector (RFC 9112
        // §11.2).
        {"@ in a name", get("Bad@Name: x\r\n") + kNext, refused(400)},
        {"empty name", get(": x\r\n") + kNext, refused(400)},
        {"NUL in a name", get("X\0Y: z\r\n"s) + kNext, refused(400)},
        // nginx: served (drops the field), as above.
        {"byte 0x80 in a name", get("X\x80Y: z\r\n") + kNext, refused(400)},
        {"SP between name and colon", get("X : y\r\n") + kNext, refused(400)},
        {"HTAB between name and colon", get("X\t: y\r\n") + kNext, refused(400)},
        {"obs-fold with SP", get("X: a\r\n b\r\n") + kNext, refused(400)},
        {"obs-fold with HTAB", get("X: a\r\n\tb\r\n") + kNext, refused(400)},
        {"first field line starts with SP", "GET / HTTP/1.1\r\n Host: x\r\n\r\n" + kNext,
         refused(400)},
        {"NUL in a value", get("X: a\0b\r\n"s) + kNext, refused(400)},
        {"bare CR in a value", get("X: a\rb\r\n") + kNext, refused(400)},
        // nginx: served; RFC 9110 §5.5: field-vchar is VCHAR or obs-text, a CTL is neither.
        {"control byte 0x01 in a value",
         get("X: a\x01"
             "b\r\n") +
             kNext,
         refused(400)},
        // nginx: served; RFC 9110 §5.5: VT is a CTL, not field-vchar.
        {"VT in a value",
         get("X: a\x0b"
             "b\r\n") +
             kNext,
         refused(400)},
        // nginx: served; RFC 9110 §5.5: ESC is a CTL, not field-vchar.
        {"ESC in a value",
         get("X: a\x1b"
             "b\r\n") +
             kNext,
         refused(400)},
        // nginx: served; RFC 9110 §5.5: DEL (0x7F) is a CTL, not field-vchar.
        {"DEL in a value",
         get("X: a\x7f"
             "b\r\n") +
             kNext,
         refused(400)},
        // nginx: served (a field with an empty value); RFC 9112 §5: field-line = field-name ":" OWS
        // field-value OWS.
        {"line without a colon", get("NoColon\r\n") + kNext, refused(400)},
        // nginx: served (it takes a bare LF as a line end); RFC 9112 §2.2 only allows that, and a
        // front end that does not frames these bytes otherwise (§11.2): refused.
        {"bare LF line endings", "GET / HTTP/1.1\nHost: x\n\n" + kNext, refused(400)},
        // nginx: served (it takes a bare LF as a line end); RFC 9112 §2.2 only allows that, and a
        // front end that does not frames these bytes otherwise (§11.2): refused.
        {"bare LF after a field", "GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n" + kNext, refused(400)},
        // nginx: served (it takes a bare LF as a line end); RFC 9112 §2.2 only allows that, and a
        // front end that does not frames these bytes otherwise (§11.2): refused.
        {"bare LF as the empty line", "GET / HTTP/1.1\r\nHost: x\r\n\n" + kNext, refused(400)},
        // nginx: served (skips the CR); RFC 9112 §2.2: a bare CR is invalid (or replaced by SP,
        // never ignored).
        {"CR CR LF", "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n" + kNext, refused(400)},
        // nginx: 400 ("Request Header Or Cookie Too Large"); RFC 6585 §5 has 431 for exactly this.
        {"one field over the header limit", get("X-Big: " + std::string(20000, 'a') + "\r\n"),
         refused(431)},
        // nginx: served (its limit is per line, here 16k, and 4 buffers); the limit here is the
        // whole head, and RFC 6585 §5 answers 431.
        {"fields over the header limit together",
         get(repeat("X-Field: " + std::string(90, 'a') + "\r\n", 200)) + kNext, refused(431)},
    };
}

// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host, with more
// than one, or with an invalid one; §3.2.2: absolute-form's authority replaces Host.
std::vector<Vector> host_vectors() {
    return {
        {"a name", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", served({200})},
        {"a name and a port", "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", served({200})},
        {"IPv4 and a port", "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", served({200})},
        {"IPv6 literal and a port", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", served({200})},
        // nginx: 400; RFC 9112 §3.2: a client MUST send an empty Host when the URI has no
        // authority: it is valid.
        {"empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", served({200})},
        // nginx: 400, as above: OWS is not part of the value (RFC 9112 §5.1).
        {"empty after OWS", "GET / HTTP/1.1\r\nHost: \r\n\r\n", served({200})},
        {"HTTP/1.0 without Host", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
         served({200})},
        {"absolute-form's authority over another Host",
         "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", served({200})},
        {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n" + kNext, refused(400)},
        {"absolute-form without Host", "GET http://a.example/ HTTP/1.1\r\n\r\n" + kNext,
         refused(400)},
        {"two equal Host fields", "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n" + kNext,
         refused(400)},
        {"two different Host fields", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + kNext,
         refused(400)},
        {"HTTP/1.0 with two Host fields",
         "GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\nConnection: keep-alive\r\n\r\n" + kNext,
         refused(400)},
        {"SP inside", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n" + kNext, refused(400)},
        {"a list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n" + kNext, refused(400)},
        {"a path", "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n" + kNext, refused(400)},
        // nginx: served (its Host check is loose); RFC 9112 §3.2: a Host that is not uri-host [":"
        // port] (RFC 9110 §7.2) MUST get 400.
        {"unclosed IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n" + kNext, refused(400)},
        // nginx: served; RFC 9112 §3.2, RFC 9110 §7.2: one optional port, so this Host is invalid:
        // 400.
        {"two ports", "GET / HTTP/1.1\r\nHost: host:port:extra\r\n\r\n" + kNext, refused(400)},
        // nginx: served; RFC 3986 §3.2.3: port = *DIGIT, so this Host is invalid: 400 (RFC 9112
        // §3.2).
        {"port not a number", "GET / HTTP/1.1\r\nHost: h:abc\r\n\r\n" + kNext, refused(400)},
        // nginx: served; Host = uri-host [":" port], no userinfo (RFC 9110 §7.2, §4.2.4): 400 (RFC
        // 9112 §3.2).
        {"userinfo", "GET / HTTP/1.1\r\nHost: user@x\r\n\r\n" + kNext, refused(400)},
    };
}

// RFC 9112 §6.2, RFC 9110 §8.6: Content-Length = 1*DIGIT; §6.3: an invalid one is
// unrecoverable (400 and close).
std::vector<Vector> content_length_vectors() {
    return {
        {"a body", with_length("hello"), served({200}), "hello"},
        {"zero", post("Content-Length: 0\r\n", ""), served({200}), ""},
        {"leading zeros", post("Content-Length: 005\r\n", "hello"), served({200}), "hello"},
        // nginx: 400 (it keeps the HTAB in the value); RFC 9112 §5.1: OWS (SP or HTAB) around a
        // value is not part of it.
        {"OWS around the value", post("Content-Length:  5 \t\r\n", "hello"), served({200}),
         "hello"},
        {"exactly the body limit", with_length(std::string(1000, 'b')), served({200}),
         std::string(1000, 'b')},
        {"a body on a GET", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
         served({200})},
        {"body shorter than sent: the rest is the next request",
         post("Content-Length: 3\r\n", "abc" + kNext), served({200, 200}), "abc"},
        {"a list of equal lengths", post("Content-Length: 1000,1000\r\n", "") + kNext,
         refused(400)},
        {"a list with OWS", post("Content-Length: 5, 5\r\n", "hello") + kNext, refused(400)},
        {"two equal fields", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello") + kNext,
         refused(400)},
        {"two different fields",
         post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!") + kNext, refused(400)},
        {"plus sign", post("Content-Length: +5\r\n", "hello") + kNext, refused(400)},
        {"minus sign", post("Content-Length: -1\r\n", "") + kNext, refused(400)},
        {"hexadecimal", post("Content-Length: 0x5\r\n", "hello") + kNext, refused(400)},
        {"digits then a letter", post("Content-Length: 5a\r\n", "hello") + kNext, refused(400)},
        {"SP between digits", post("Content-Length: 5 5\r\n", "hello") + kNext, refused(400)},
        {"empty", post("Content-Length:\r\n", "") + kNext, refused(400)},
        {"only SP", post("Content-Length: \r\n", "") + kNext, refused(400)},
        // Answered from the head alone: no body follows.
        // nginx: the same 413 with Connection: close at once, but it reads on for lingering_timeout
        // (5 s) before it closes; a FIN at once (a half-close, RFC 9112 §9.6) is what this asks.
        {"over the body limit", post("Content-Length: 1001\r\n", ""), refused(413)},
        // nginx: 413, then 5 s of lingering before the close, as above.
        {"far over the body limit", post("Content-Length: 100000000\r\n", ""), refused(413)},
    };
}

// RFC 9112 §6.1: chunked is the final coding of a request's Transfer-Encoding, once;
// §6.3: a Transfer-Encoding without chunked last, or with Content-Length, is 400 and close;
// RFC 9110 §5.6.1: list syntax; §15.6.2: an unknown coding is 501; RFC 9112 §6.1: TE on
// HTTP/1.0 is a framing fault.
std::vector<Vector> transfer_encoding_vectors() {
    const std::string body = "5\r\nhello\r\n0\r\n\r\n";
    auto coded = [&](std::string_view codings) {
        return post("Transfer-Encoding: " + std::string(codings) + "\r\n", body) + kNext;
    };
    return {
        {"chunked", chunked(body), served({200}), "hello"},
        {"Chunked", post("Transfer-Encoding: Chunked\r\n", body), served({200}), "hello"},
        {"CHUNKED", post("Transfer-Encoding: CHUNKED\r\n", body), served({200}), "hello"},
        // nginx: 501 (the HTAB stays in its value); RFC 9112 §5.1: OWS is SP or HTAB, stripped:
        // this is chunked.
        {"OWS around chunked", post("Transfer-Encoding:  chunked \t\r\n", body), served({200}),
         "hello"},
        {"chunked on a GET",
         "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", served({200})},
        {"HTTP/1.0 with chunked",
         "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + body + kNext, refused(400)},
        {"Content-Length then chunked",
         post("Content-Length: 15\r\nTransfer-Encoding: chunked\r\n", body) + kNext, refused(400)},
        {"chunked then Content-Length",
         post("Transfer-Encoding: chunked\r\nContent-Length: 15\r\n", body) + kNext, refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): chunked not last means the length is unknown: 400 and
        // close.
        {"chunked, gzip", coded("chunked, gzip"), refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): no chunked last: 400 and close.
        {"gzip alone", coded("gzip"), refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): not chunked: 400 and close.
        {"chunk", coded("chunk"), refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): not chunked: 400 and close.
        {"xchunked", coded("xchunked"), refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): not chunked: 400 and close.
        {"chunked then byte 0x80", coded("chunked\x80"), refused(400)},
        // nginx: 501; RFC 9112 §6.1: chunked is applied once only, so the framing is invalid: 400.
        {"chunked, chunked", coded("chunked, chunked"), refused(400)},
        {"two chunked fields",
         post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", body) + kNext,
         refused(400)},
        {"gzip, chunked", coded("gzip, chunked"), refused(501)},
        {"identity, chunked", coded("identity, chunked"), refused(501)},
        // nginx: 400 (no second Transfer-Encoding field); RFC 9110 §5.3: the two fields are the
        // list `gzip, chunked`, framed by chunked, with a coding not implemented: 501 (RFC 9112
        // §6.1).
        {"gzip and chunked in two fields",
         post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", body) + kNext,
         refused(501)},
        // nginx: 501. RFC 9110 §5.6.1.2 says a recipient MUST ignore a few empty list elements
        // (then this is chunked); refusing them in the framing field is the stricter choice: the
        // lead's call.
        {"empty element first", coded(", chunked"), refused(400)},
        // nginx: 501. RFC 9110 §5.6.1.2 would read `gzip, chunked` (501); 400 is the stricter
        // choice, as above.
        {"empty element between", coded("gzip,,chunked"), refused(400)},
        // nginx: 501. RFC 9110 §5.6.1.2 would read chunked; 400 is the stricter choice, as above.
        {"empty element last", coded("chunked,"), refused(400)},
        // nginx: 501; no coding at all, so chunked is not last: RFC 9112 §6.3 (4): 400 and close.
        {"empty value", coded(""), refused(400)},
    };
}

// RFC 9112 §7.1: chunk-size = 1*HEXDIG, then optional extensions (§7.1.1), CRLF; the data
// is followed by CRLF; last-chunk = 1*("0"), trailers, CRLF.
std::vector<Vector> chunked_vectors() {
    return {
        {"two chunks", chunked("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), served({200}), "abcde"},
        {"hex digits in both cases", chunked("a\r\n0123456789\r\nA\r\n9876543210\r\n0\r\n\r\n"),
         served({200}), "01234567899876543210"},
        {"an extension with a value", chunked("5;name=value\r\nhello\r\n0\r\n\r\n"), served({200}),
         "hello"},
        {"extensions, one with a quoted value", chunked("5;a;b=\"q\"\r\nhello\r\n0\r\n\r\n"),
         served({200}), "hello"},
        {"an extension on the last chunk", chunked("5\r\nhello\r\n0;end=1\r\n\r\n"), served({200}),
         "hello"},
        {"leading zeros in sizes", chunked("0005\r\nhello\r\n000\r\n\r\n"), served({200}), "hello"},
        {"exactly the body limit", chunked("3e8\r\n" + std::string(1000, 'b') + "\r\n0\r\n\r\n"),
         served({200}), std::string(1000, 'b')},
        {"only the last chunk", chunked("0\r\n\r\n"), served({200}), ""},
        {"the next request right after the last chunk", chunked("5\r\nhello\r\n0\r\n\r\n") + kNext,
         served({200, 200}), "hello"},
        {"0x prefix", chunked("0x5\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        {"SP before the size", chunked(" 5\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        // nginx: served; RFC 9112 §7.1: chunk-size = 1*HEXDIG, and BWS only comes before a `;`
        // (§7.1.1).
        {"SP after the size", chunked("5 \r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        {"plus sign", chunked("+5\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        {"minus sign", chunked("-5\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        {"not hexadecimal", chunked("zz\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        {"empty size line", chunked("\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        {"size over 64 bits", chunked("fffffffffffffffff1\r\nhello\r\n0\r\n\r\n") + kNext,
         refused(400)},
        {"a chunk over the body limit",
         chunked("3e9\r\n" + std::string(1001, 'b') + "\r\n0\r\n\r\n") + kNext, refused(413)},
        {"chunks over the body limit together",
         chunked("1f4\r\n" + std::string(500, 'b') + "\r\n1f5\r\n" + std::string(501, 'b') +
                 "\r\n0\r\n\r\n") +
             kNext,
         refused(413)},
        {"data longer than its size", chunked("5\r\nhelloX\r\n0\r\n\r\n") + kNext, refused(400)},
        // nginx: served (the data is "hell\r", ended by a bare LF); RFC 9112 §7.1: chunk-data is
        // followed by CRLF.
        {"data shorter than its size", chunked("5\r\nhell\r\n0\r\n\r\n") + kNext, refused(400)},
        {"data without CRLF", chunked("5\r\nhello0\r\n\r\n") + kNext, refused(400)},
        // nginx: served; RFC 9112 §7.1: CRLF after chunk-data.
        {"data ended by a bare LF", chunked("5\r\nhello\n0\r\n\r\n") + kNext, refused(400)},
        // nginx: served; RFC 9112 §7.1: CRLF after chunk-size and its extensions.
        {"size line ended by a bare LF", chunked("5\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
        // nginx: served; RFC 9112 §7.1: last-chunk and the trailer section end in CRLF.
        {"last chunk ended by bare LFs", chunked("5\r\nhello\r\n0\n\n") + kNext, refused(400)},
        // nginx: served (extensions of any length); RFC 9112 §7.1.1: a server ought to limit them
        // and answer 4xx beyond.
        {"size line over 4096 with its extensions",
         chunked("5;" + std::string(5000, 'a') + "\r\nhello\r\n0\r\n\r\n") + kNext, refused(400)},
    };
}

// RFC 9110 §6.5.1: a trailer field that frames, routes, authenticates, controls or
// describes the content must not be a trailer; RFC 9112 §7.1.2: trailers are field lines.
std::vector<Vector> trailer_vectors() {
    auto with_trailer = [](std::string_view field) {
        return chunked("5\r\nhello\r\n0\r\n" + std::string(field) + "\r\n\r\n") + kNext;
    };
    return {
        {"an allowed trailer", chunked("5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"), served({200}),
         "hello"},
        {"two allowed trailers", chunked("5\r\nhello\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"),
         served({200}), "hello"},
        {"a trailer announced by Trailer",
         chunked("5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n", "Trailer: X-Checksum\r\n"),
         served({200}), "hello"},
        // nginx, for every vector from here on: served (it skips a trailer section unparsed and
        // unbounded). RFC 9110 §6.5.1: fields that frame, route, authenticate, control or describe
        // the content must not be trailers, and RFC 9112 §7.1.2 makes trailers field lines, checked
        // as fields are (limit: RFC 6585 §5): refused, so no one who merges trailers later can
        // change the request.
        {"Host", with_trailer("Host: y"), refused(400)},
        {"Content-Length", with_trailer("Content-Length: 5"), refused(400)},
        {"content-length in lower case", with_trailer("content-length: 5"), refused(400)},
        {"Transfer-Encoding", with_trailer("Transfer-Encoding: chunked"), refused(400)},
        {"Connection", with_trailer("Connection: close"), refused(400)},
        {"Expect", with_trailer("Expect: 100-continue"), refused(400)},
        {"Authorization", with_trailer("Authorization: Basic eDp5"), refused(400)},
        {"Cookie", with_trailer("Cookie: a=b"), refused(400)},
        {"Content-Type", with_trailer("Content-Type: text/plain"), refused(400)},
        {"Trailer", with_trailer("Trailer: X"), refused(400)},
        {"Upgrade", with_trailer("Upgrade: h2c"), refused(400)},
        {"trailer section over the limit", with_trailer("X-Big: " + std::string(20000, 'a')),
         refused(431)},
        {"obs-fold in a trailer", with_trailer("X: a\r\n b"), refused(400)},
        {"trailer line without a colon", with_trailer("NoColon"), refused(400)},
        {"trailer ended by a bare LF", chunked("5\r\nhello\r\n0\r\nX: a\n\r\n") + kNext,
         refused(400)},
    };
}

// The shapes of request smuggling (RFC 9112 §6.3, §11.2): two parsers that frame the same
// bytes differently. Each must be refused, or framed the one way that RFC 9112 allows.
std::vector<Vector> smuggling_vectors() {
    const std::string ends_early = "0\r\n\r\n" + kSmuggled;  // chunked: a request follows
    const std::string body = "5\r\nhello\r\n0\r\n\r\n";
    return {
        {"CL.TE",
         post("Content-Length: " + std::to_string(ends_early.size()) +
                  "\r\nTransfer-Encoding: chunked\r\n",
              ends_early) +
             kNext,
         refused(400)},
        {"TE.CL",
         post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
              hex(kSmuggled.size()) + "\r\n" + kSmuggled + "\r\n0\r\n\r\n") +
             kNext,
         refused(400)},
        {"TE.TE: SP before the colon", post("Transfer-Encoding : chunked\r\n", body) + kNext,
         refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): not chunked: 400 and close.
        {"TE.TE: xchunked", post("Transfer-Encoding: xchunked\r\n", body) + kNext, refused(400)},
        // nginx: 501 (the HTAB stays in its value); RFC 9112 §5.1: HTAB is OWS: chunked.
        {"TE.TE: HTAB before chunked is OWS", post("Transfer-Encoding:\tchunked\r\n", body),
         served({200}), "hello"},
        {"TE.TE: a second Transfer-encoding",
         post("Transfer-Encoding: chunked\r\nTransfer-encoding: x\r\n", body) + kNext,
         refused(400)},
        // nginx: served, framed as chunked; a front end without bare LFs sees one field X and no
        // body: the classic desync (RFC 9112 §2.2, §11.2).
        {"TE.TE: bare LF before Transfer-Encoding",
         post("X: y\nTransfer-Encoding: chunked\r\n", body) + kNext, refused(400)},
        {"TE.TE: obs-fold", post("Transfer-Encoding:\r\n chunked\r\n", body) + kNext, refused(400)},
        // nginx: 501; RFC 9110 §5.5: a CTL makes the value invalid: 400.
        {"TE.TE: VT before chunked",
         post("Transfer-Encoding:\x0b"
              "chunked\r\n",
              body) +
             kNext,
         refused(400)},
        // nginx: 501; RFC 9112 §6.3 (4): the final coding is not chunked: 400 and close.
        {"TE.TE: quoted chunked", post("Transfer-Encoding: \"chunked\"\r\n", body) + kNext,
         refused(400)},
        {"TE.TE: NUL after chunked", post("Transfer-Encoding: chunked\0\r\n"s, body) + kNext,
         refused(400)},
        {"Transfer_Encoding is another field",
         post("Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", "hello"), served({200}),
         "hello"},
        {"HTTP/1.0 with Transfer-Encoding and Content-Length",
         "POST /echo HTTP/1.0\r\nContent-Length: 15\r\nTransfer-Encoding: chunked\r\n\r\n" + body +
             kNext,
         refused(400)},
        {"duplicate Content-Length",
         post("Content-Length: 0\r\nContent-Length: " + std::to_string(kSmuggled.size()) + "\r\n",
              kSmuggled) +
             kNext,
         refused(400)},
        {"Content-Length list",
         post("Content-Length: 0, " + std::to_string(kSmuggled.size()) + "\r\n", kSmuggled) + kNext,
         refused(400)},
        {"bare CR before Transfer-Encoding",
         post("X: y\rTransfer-Encoding: chunked\r\n", body) + kNext, refused(400)},
        // nginx: served, framed by the length; a front end without bare LFs sees no Content-Length
        // and a request in the body (RFC 9112 §2.2, §11.2).
        {"bare LF before Content-Length",
         post("X: y\nContent-Length: " + std::to_string(kSmuggled.size()) + "\r\n", kSmuggled) +
             kNext,
         refused(400)},
        {"NUL before Transfer-Encoding",
         post("X: y\0\r\nTransfer-Encoding: chunked\r\n"s, body) + kNext, refused(400)},
        // nginx: served (its size line ends at the LF); a parser that waits for CRLF reads other
        // chunks (RFC 9112 §7.1).
        {"bare LF in a chunk extension", chunked("2;\nxx\r\n" + body) + kNext, refused(400)},
        {"size that wraps to 5 in 64 bits",
         chunked("10000000000000005\r\nhello\r\n0\r\n\r\n" + kSmuggled) + kNext, refused(400)},
        {"19-digit size with leading zeros", chunked("0000000000000000005\r\nhello\r\n0\r\n\r\n"),
         served({200}), "hello"},
        {"4000 leading zeros", chunked(std::string(4000, '0') + "5\r\nhello\r\n0\r\n\r\n"),
         served({200}), "hello"},
        {"a request in a Content-Length body is body", with_length(kSmuggled), served({200}),
         kSmuggled},
        {"a request in a chunked body is body",
         chunked(hex(kSmuggled.size()) + "\r\n" + kSmuggled + "\r\n0\r\n\r\n"), served({200}),
         kSmuggled},
    };
}

// RFC 9112 §9.3.2: a server answers pipelined requests in order.
std::vector<Vector> pipelining_vectors() {
    return {
        {"three GETs in one write", kNext + kNext + kNext, served({200, 200, 200})},
        {"POST with a body then GET", with_length("hello") + kNext, served({200, 200}), "hello"},
        {"chunked POST then GET", chunked("5\r\nhello\r\n0\r\n\r\n") + kNext, served({200, 200}),
         "hello"},
        {"three answers",
         "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n" + kSmuggled +
             "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n",
         served({200, 404, 405})},
        {"HTTP/1.0 keep-alive then HTTP/1.1",
         "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + kNext, served({200, 200})},
        {"ten GETs in one write", repeat(kNext, 10),
         served({200, 200, 200, 200, 200, 200, 200, 200, 200, 200})},
        {"a GET then a refused request", kNext + "GET / HTTP/1.1\r\n\r\n" + kNext,
         served_then_refused({200}, 400)},
    };
}

TEST_F(Conformance, RequestLineRules) {
    expect_verdicts(request_line_vectors());
}
TEST_F(Conformance, TargetRules) {
    expect_verdicts(target_vectors());
}
TEST_F(Conformance, FieldRules) {
    expect_verdicts(field_vectors());
}
TEST_F(Conformance, HostRules) {
    expect_verdicts(host_vectors());
}
TEST_F(Conformance, ContentLengthRules) {
    expect_verdicts(content_length_vectors());
}
TEST_F(Conformance, TransferEncodingRules) {
    expect_verdicts(transfer_encoding_vectors());
}
TEST_F(Conformance, ChunkedBodyRules) {
    expect_verdicts(chunked_vectors());
}
TEST_F(Conformance, TrailerRules) {
    expect_verdicts(trailer_vectors());
}
TEST_F(Conformance, SmugglingShapesAreRefusedOrFramedOneWay) {
    expect_verdicts(smuggling_vectors());
}
TEST_F(Conformance, PipelinedRequestsAreAnsweredInOrder) {
    expect_verdicts(pipelining_vectors());
}

}  // namespace
}  // namespace prefork::testing

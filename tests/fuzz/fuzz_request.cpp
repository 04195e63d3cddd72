// libFuzzer harness: bytes from a client into the worker's RequestParser, read by read the
// way a connection feeds it (pipelined requests included), and each parsed request into
// the Router. Whatever the bytes, the parser must answer within its limits, never hand on
// a request that breaks what it promises, refuse only with the statuses it documents, and
// make the same requests of the same bytes however they are cut into reads.
//
// Input: byte 0 chooses the read size (0: everything in one read, else 1..64 bytes), byte
// 1 whether reads vary in size (odd: each of 1..that size); the rest is what is sent.

#include "request_parser.hpp"
#include "router.hpp"

#include <prefork/request.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using prefork::Request;
using prefork::RequestParser;
using Result = RequestParser::Result;
namespace http = prefork::http;

// Small, so that the fuzzer reaches every limit with short inputs.
constexpr prefork::ParserLimits kLimits{
    .header_limit = 1024, .body_limit = 4096, .chunk_line_limit = 256, .trailer_limit = 1024};

#define CHECK(condition)                                                                  \
    do {                                                                                  \
        if (!(condition)) {                                                               \
            std::fprintf(stderr, "fuzz_request: %s:%d: broken: %s\n", __FILE__, __LINE__, \
                         #condition);                                                     \
            std::abort();                                                                 \
        }                                                                                 \
    } while (false)

const prefork::Router& router() {
    static const prefork::Router routes = [] {
        prefork::Router r;
        prefork::Handler ok;  // never called: what counts is which route matches
        r.add(http::verb::get, "/", ok);
        r.add(http::verb::post, "/echo", ok);
        r.add(http::verb::get, "/users/{id}", ok);
        r.add(http::verb::put, "/users/{id}", ok);
        r.add(http::verb::get, "/files/{name}/meta", ok);
        return r;
    }();
    return routes;
}

bool is_token(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
}

bool is_visible_ascii(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

// What a head the parser accepted must be: nothing a handler, a log line or a response
// could be fooled by.
void check_head(RequestParser& parser) {
    const Request::Message& message = parser.message();
    CHECK(is_token(message.method_string()));
    std::string_view target = message.target();
    CHECK(!target.empty());
    CHECK(target.front() == '/' || (target == "*" && message.method() == http::verb::options));
    CHECK(is_visible_ascii(target));
    CHECK(message.version() == 10 || message.version() == 11);
    for (const auto& field : message) {
        CHECK(is_token(field.name_string()));
        std::string_view value = field.value();
        CHECK(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
    }
    CHECK(message.count(http::field::content_length) <= 1);
    CHECK(message.count(http::field::host) <= 1);
    if (message.version() == 11) CHECK(message.count(http::field::host) == 1);
    if (parser.chunked()) {
        CHECK(message.version() == 11);
        CHECK(message.count(http::field::content_length) == 0);
        CHECK(parser.content_length() == 0);
    } else {
        CHECK(parser.content_length() <= kLimits.body_limit);
    }
}

void check_route(Request& request) {
    auto match = router().match(request);
    CHECK(match.status == 200 || match.status == 404 || match.status == 405);
    CHECK((match.handler != nullptr) == (match.status == 200));
    CHECK(match.status != 405 || !match.allow.empty());
}

void check_refusal(const RequestParser& parser) {
    int status = parser.status();
    CHECK(status == 400 || status == 413 || status == 414 || status == 431 || status == 501 ||
          status == 505);
    CHECK(!parser.reason().empty());
}

// A connection's reads: either all at once or cut into reads of 1..64 bytes.
class Reads {
  public:
    Reads(std::uint8_t size, std::uint8_t vary, std::string_view bytes)
        : size_(size == 0 ? bytes.size() : size % 64 + 1),
          vary_(size != 0 && (vary & 1)),
          state_(vary | 1),
          rest_(bytes) {}

    bool next(std::string_view& read) {
        if (rest_.empty()) return false;
        std::size_t n = size_;
        if (vary_) {
            state_ = state_ * 1103515245u + 12345u;
            n = (state_ >> 16) % size_ + 1;
        }
        n = std::min(n, rest_.size());
        read = rest_.substr(0, n);
        rest_.remove_prefix(n);
        return true;
    }

  private:
    std::size_t size_;
    bool vary_;
    std::uint32_t state_;
    std::string_view rest_;
};

// What a connection made of the bytes: each request it completed (head and body, as a
// handler would see them), and whether it refused one.
struct Transcript {
    std::vector<std::string> requests;
    bool refused = false;

    bool operator==(const Transcript&) const = default;
};

std::string describe(const Request& request, const std::string& body) {
    const Request::Message& message = request.message();
    std::string text(message.method_string());
    text.append(" ").append(message.target()).append(" ").append(std::to_string(message.version()));
    for (const auto& field : message) {
        text.append("\n").append(field.name_string()).append(": ").append(field.value());
    }
    return text.append("\n\n").append(body);
}

// The loop of a connection: append each read to the buffer, parse a head from its front,
// then the body, and start over with what is left (pipelining); stop at a refusal.
Transcript serve(Reads reads, std::size_t input_size) {
    Transcript transcript;
    RequestParser parser(kLimits);
    std::string buffer, body;
    std::optional<Request> request;  // its head is parsed, its body perhaps not yet
    std::string_view read;
    while (reads.next(read)) {
        buffer.append(read);
        while (!buffer.empty()) {
            std::size_t consumed = 0;
            if (!request) {
                Result result = parser.parse_head(buffer, consumed);
                CHECK(consumed <= buffer.size());
                if (result == Result::refused) {  // the connection answers and closes
                    check_refusal(parser);
                    transcript.refused = true;
                    return transcript;
                }
                if (result == Result::need_more) {
                    CHECK(buffer.size() <= kLimits.header_limit + 4096);
                    break;
                }
                CHECK(consumed > 0);
                buffer.erase(0, consumed);
                check_head(parser);
                bool has_body = parser.has_body();
                request.emplace(std::move(parser.message()));
                check_route(*request);
                if (has_body) continue;
            } else {
                Result result = parser.parse_body(buffer, consumed, body);
                CHECK(consumed <= buffer.size());
                CHECK(body.size() <= kLimits.body_limit);
                CHECK(body.size() == parser.body_received());
                if (result == Result::refused) {
                    check_refusal(parser);
                    transcript.refused = true;
                    return transcript;
                }
                if (result == Result::need_more) CHECK(consumed == buffer.size());
                buffer.erase(0, consumed);
                if (result == Result::need_more) break;
                if (!parser.chunked()) CHECK(body.size() == parser.content_length());
            }
            // The request is complete; what is left in the buffer starts the next one.
            transcript.requests.push_back(describe(*request, body));
            CHECK(transcript.requests.size() <= input_size);
            request.reset();
            parser.reset();
            body.clear();
        }
    }
    return transcript;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    std::string_view sent(reinterpret_cast<const char*>(data) + 2, size - 2);
    Transcript transcript = serve(Reads(data[0], data[1], sent), size);
    // How the bytes arrive changes nothing but, at most, which status a refusal gets (a
    // line too long may be refused before its bare LF has arrived).
    if (data[0] != 0) CHECK(transcript == serve(Reads(0, 0, sent), size));
    return 0;
}

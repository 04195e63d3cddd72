#include "request_parser.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork {

// Readable failure messages for parse_head's and parse_body's results.
static void PrintTo(RequestParser::Result result, std::ostream* out) {
    switch (result) {
        case RequestParser::Result::need_more:
            *out << "need_more";
            break;
        case RequestParser::Result::done:
            *out << "done";
            break;
        case RequestParser::Result::refused:
            *out << "refused";
            break;
    }
}

namespace {

using Result = RequestParser::Result;
using namespace std::string_literals;

// What the parser decided about a request: done, or refused with a status.
struct Verdict {
    Result result = Result::need_more;
    int status = 0;
    bool operator==(const Verdict&) const = default;
};

constexpr Verdict kDone{Result::done, 0};
constexpr Verdict refused(int status) {
    return {Result::refused, status};
}

void PrintTo(const Verdict& verdict, std::ostream* out) {
    switch (verdict.result) {
        case Result::need_more:
            *out << "need_more";
            break;
        case Result::done:
            *out << "done";
            break;
        case Result::refused:
            *out << "refused " << verdict.status;
            break;
    }
}

// How reading one request ends: the verdict and, when done, its body and its length.
struct Outcome {
    Verdict verdict;
    std::string body;
    std::size_t consumed = 0;
    bool operator==(const Outcome&) const = default;
};

void PrintTo(const Outcome& outcome, std::ostream* out) {
    PrintTo(outcome.verdict, out);
    *out << ", body \"" << outcome.body << "\", consumed " << outcome.consumed;
}

// Bytes as a C string literal would spell them, for failure messages.
std::string escaped(std::string_view bytes) {
    std::string text;
    for (unsigned char c : bytes) {
        if (c == '\r') {
            text += "\\r";
        } else if (c == '\n') {
            text += "\\n";
        } else if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02X", c);
            text += hex;
        } else {
            text += static_cast<char>(c);
        }
    }
    return text;
}

// How many bytes have arrived after each read.
using Reads = std::vector<std::size_t>;

Reads at_once(std::string_view bytes) {
    return {bytes.size()};
}

Reads byte_by_byte(std::string_view bytes) {
    Reads reads;
    for (std::size_t received = 1; received <= bytes.size(); ++received) reads.push_back(received);
    return reads;
}

Reads split_at(std::size_t point, std::string_view bytes) {
    return {point, bytes.size()};
}

// Reads one request from `bytes` as the worker does: parse_head sees all the bytes received
// so far, parse_body those after what it has already used. A refusal must say why.
Outcome read_request(RequestParser& parser, std::string_view bytes, const Reads& reads) {
    std::string body;
    std::size_t used = 0;
    bool in_body = false;
    for (std::size_t received : reads) {
        std::string_view data = bytes.substr(0, received);
        std::size_t consumed = 0;
        if (!in_body) {
            Result head = parser.parse_head(data, consumed);
            if (head == Result::need_more) continue;
            if (head == Result::refused) {
                EXPECT_FALSE(parser.reason().empty()) << "refused " << parser.status();
                return {refused(parser.status()), "", 0};
            }
            used = consumed;
            if (!parser.has_body()) return {kDone, "", used};
            in_body = true;
        }
        Result result = parser.parse_body(data.substr(used), consumed, body);
        used += consumed;
        if (result == Result::refused) {
            EXPECT_FALSE(parser.reason().empty()) << "refused " << parser.status();
            return {refused(parser.status()), "", 0};
        }
        if (result == Result::done) return {kDone, body, used};
        EXPECT_EQ(used, received) << "need_more before all the body bytes were used";
    }
    return {};
}

Outcome read_request(std::string_view bytes, const Reads& reads, const ParserLimits& limits = {}) {
    RequestParser parser(limits);
    return read_request(parser, bytes, reads);
}

// The verdict on `bytes` read at once; read byte by byte, they must end the same way.
Verdict verdict_of(std::string_view bytes, const ParserLimits& limits = {}) {
    Outcome whole = read_request(bytes, at_once(bytes), limits);
    EXPECT_EQ(read_request(bytes, byte_by_byte(bytes), limits), whole)
        << "byte by byte: " << escaped(bytes);
    return whole.verdict;
}

// A parser that has parsed the head of `request`, which it must accept.
RequestParser parsed(std::string_view request) {
    RequestParser parser;
    std::size_t consumed = 0;
    EXPECT_EQ(parser.parse_head(request, consumed), Result::done)
        << escaped(request) << ": " << parser.reason();
    return parser;
}

// An HTTP/1.1 GET of "/" with a Host, then `fields` (each ending in CRLF).
std::string get(std::string_view fields = "") {
    return "GET / HTTP/1.1\r\nHost: example.com\r\n"s + std::string(fields) + "\r\n";
}

// An HTTP/1.1 POST with `fields` and `body` after the head.
std::string post(std::string_view fields, std::string_view body = "") {
    return "POST /upload HTTP/1.1\r\nHost: example.com\r\n"s + std::string(fields) + "\r\n" +
           std::string(body);
}

std::string post_chunked(std::string_view body) {
    return post("Transfer-Encoding: chunked\r\n", body);
}

std::vector<std::pair<std::string, std::string>> fields_of(const Request::Message& message) {
    std::vector<std::pair<std::string, std::string>> fields;
    for (const auto& field : message) fields.emplace_back(field.name_string(), field.value());
    return fields;
}

TEST(RequestParser, SimpleGetHasMethodTargetVersionAndFields) {
    std::string request =
        "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    RequestParser parser;
    std::size_t consumed = 0;
    ASSERT_EQ(parser.parse_head(request, consumed), Result::done);
    EXPECT_EQ(consumed, request.size());
    EXPECT_EQ(parser.message().method(), http::verb::get);
    EXPECT_EQ(parser.message().target(), "/index.html?q=1");
    EXPECT_EQ(parser.message().version(), 11);
    EXPECT_EQ(parser.message()[http::field::host], "example.com");
    EXPECT_EQ(parser.message()["accept"], "*/*");
    EXPECT_FALSE(parser.has_body());
    EXPECT_TRUE(parser.keep_alive());
    EXPECT_FALSE(parser.expects_continue());
}

TEST(RequestParser, Http11KeepsTheConnectionUnlessConnectionClose) {
    EXPECT_TRUE(parsed(get()).keep_alive());
    EXPECT_FALSE(parsed(get("Connection: close\r\n")).keep_alive());
    EXPECT_FALSE(parsed(get("Connection: Upgrade, Close\r\n")).keep_alive());
}

TEST(RequestParser, Http10ClosesTheConnectionUnlessConnectionKeepAlive) {
    EXPECT_FALSE(parsed("GET / HTTP/1.0\r\n\r\n").keep_alive());
    EXPECT_TRUE(parsed("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
    EXPECT_TRUE(parsed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    EXPECT_FALSE(parsed("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive());
    EXPECT_EQ(parsed("GET / HTTP/1.0\r\n\r\n").message().version(), 10);
}

TEST(RequestParser, ExpectContinueIsHonouredOnHttp11Only) {
    EXPECT_TRUE(parsed(post("Expect: 100-continue\r\nContent-Length: 5\r\n")).expects_continue());
    EXPECT_TRUE(parsed(post("Expect: 100-Continue\r\nContent-Length: 5\r\n")).expects_continue());
    EXPECT_FALSE(parsed("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
                     .expects_continue());
    EXPECT_FALSE(parsed(post("Content-Length: 5\r\n")).expects_continue());
}

TEST(RequestParser, HeadSplitAcrossReadsParsesTheSameAsWhole) {
    std::string request =
        "\r\nPOST http://example.com:8080/submit?x=1 HTTP/1.1\r\nHost: other\r\n"
        "Content-Length: 3\r\nX-Note:  caf\xC3\xA9 \r\nConnection: close\r\n\r\nabc";
    RequestParser whole;
    std::size_t whole_consumed = 0;
    ASSERT_EQ(whole.parse_head(request, whole_consumed), Result::done) << whole.reason();

    RequestParser growing;
    std::size_t consumed = 0;
    std::size_t received = 0;
    Result result = Result::need_more;
    while (result == Result::need_more && received < request.size()) {
        result = growing.parse_head(std::string_view(request).substr(0, ++received), consumed);
    }
    ASSERT_EQ(result, Result::done) << growing.reason();
    EXPECT_EQ(received, whole_consumed);  // done as soon as the head's last byte arrived
    EXPECT_EQ(consumed, whole_consumed);
    EXPECT_EQ(growing.message().method_string(), whole.message().method_string());
    EXPECT_EQ(growing.message().target(), whole.message().target());
    EXPECT_EQ(growing.message().version(), whole.message().version());
    EXPECT_EQ(fields_of(growing.message()), fields_of(whole.message()));
    EXPECT_EQ(growing.content_length(), whole.content_length());
    EXPECT_EQ(growing.keep_alive(), whole.keep_alive());
}

TEST(RequestParser, VerdictIsTheSameAtEverySplitPoint) {
    ParserLimits limits;
    limits.header_limit = 80;
    limits.body_limit = 16;
    limits.chunk_line_limit = 16;
    limits.trailer_limit = 24;
    limits.max_empty_lines = 2;
    const std::string te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::pair<std::string, Verdict> cases[] = {
        {"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n", kDone},
        {"\r\n\r\nGET / HTTP/1.0\r\n\r\n", kDone},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", kDone},
        {te + "5;x=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Sum: 1\r\n\r\n", kDone},
        {"\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n", refused(400)},
        {"GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", refused(414)},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(80, 'p') + "\r\n\r\n", refused(431)},
        {"GET / HTTP/1.1\r\nHost: a\r\n X: folded\r\n\r\n", refused(400)},
        {"GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n", refused(400)},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", refused(505)},
        {"GET / HTTP/1.1\r\n\r\n", refused(400)},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n", refused(413)},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", refused(501)},
        {te + "5\r\nhelloXX\r\n0\r\n\r\n", refused(400)},
        {te + "9\r\n123456789\r\n8\r\n12345678\r\n0\r\n\r\n", refused(413)},
        {te + "5;" + std::string(20, 'x') + "\r\nhello\r\n0\r\n\r\n", refused(400)},
        {te + "0\r\nX-Pad: " + std::string(30, 'p') + "\r\n\r\n", refused(431)},
        {te + "0\r\nHost: evil\r\n\r\n", refused(400)},
    };
    for (const auto& [request, expected] : cases) {
        SCOPED_TRACE(escaped(request));
        Outcome whole = read_request(request, at_once(request), limits);
        EXPECT_EQ(whole.verdict, expected);
        for (std::size_t point = 1; point < request.size(); ++point) {
            EXPECT_EQ(read_request(request, split_at(point, request), limits), whole)
                << "split at " << point;
        }
        EXPECT_EQ(read_request(request, byte_by_byte(request), limits), whole) << "byte by byte";
    }
}

TEST(RequestParser, EmptyLinesBeforeTheRequestLineAreSkippedAndConsumed) {
    ParserLimits limits;
    limits.max_empty_lines = 2;
    std::string request = "\r\n\r\n" + get();
    RequestParser parser(limits);
    std::size_t consumed = 0;
    ASSERT_EQ(parser.parse_head(request, consumed), Result::done) << parser.reason();
    EXPECT_EQ(consumed, request.size());
    EXPECT_EQ(parser.message().target(), "/");
    EXPECT_EQ(verdict_of("\r\n\r\n" + get(), limits), kDone);
}

TEST(RequestParser, MoreEmptyLinesThanTheLimitAreRefused400) {
    ParserLimits limits;
    limits.max_empty_lines = 2;
    EXPECT_EQ(verdict_of("\r\n\r\n\r\n" + get(), limits), refused(400));
    std::string bare_lf = "\n";  // a bare LF is no empty line
    bare_lf += get();
    EXPECT_EQ(verdict_of(bare_lf), refused(400));
}

TEST(RequestParser, AbsoluteFormTargetBecomesOriginFormAndItsAuthorityTheHost) {
    auto parser =
        parsed("GET http://api.example.com:8080/v1/items?page=2 HTTP/1.1\r\nHost: wrong\r\n\r\n");
    EXPECT_EQ(parser.message().target(), "/v1/items?page=2");
    EXPECT_EQ(parser.message()[http::field::host], "api.example.com:8080");
    EXPECT_EQ(parser.message().count(http::field::host), 1u);
    EXPECT_EQ(parsed("GET HTTPS://example.com/a HTTP/1.0\r\n\r\n").message()[http::field::host],
              "example.com");
}

TEST(RequestParser, AbsoluteFormWithoutPathTargetsTheRoot) {
    EXPECT_EQ(
        parsed("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n").message().target(),
        "/");
    EXPECT_EQ(parsed("GET https://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
                  .message()
                  .target(),
              "/?q=1");
}

TEST(RequestParser, AsteriskFormIsForOptionsOnly) {
    EXPECT_EQ(parsed("OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n").message().target(), "*");
    EXPECT_EQ(verdict_of("GET * HTTP/1.1\r\nHost: example.com\r\n\r\n"), refused(400));
}

TEST(RequestParser, RequestLineLongerThanTheHeaderLimitIsRefused414) {
    ParserLimits limits;
    limits.header_limit = 64;
    std::string line = "GET /" + std::string(100, 'a');
    EXPECT_EQ(verdict_of(line, limits), refused(414));  // no CRLF in sight
    EXPECT_EQ(verdict_of(line + " HTTP/1.1\r\nHost: a\r\n\r\n", limits), refused(414));
}

TEST(RequestParser, FieldsBeyondTheHeaderLimitAreRefused431) {
    ParserLimits limits;
    limits.header_limit = 64;
    EXPECT_EQ(verdict_of(get("X-Pad: " + std::string(64, 'p') + "\r\n"), limits), refused(431));
    EXPECT_EQ(verdict_of("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + std::string(64, 'p'), limits),
              refused(431));  // no end in sight
    EXPECT_EQ(verdict_of(get("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n"), limits),
              refused(431));
}

TEST(RequestParser, HeadOfExactlyTheHeaderLimitIsAccepted) {
    ParserLimits limits;
    limits.header_limit = 64;
    std::string fits = get("X-Pad: " + std::string(64 - get().size() - 9, 'p') + "\r\n");
    ASSERT_EQ(fits.size(), 64u);
    EXPECT_EQ(verdict_of(fits, limits), kDone);
    EXPECT_EQ(verdict_of(get("X-Pad: " + std::string(64 - get().size() - 8, 'p') + "\r\n"), limits),
              refused(431));
}

TEST(RequestParser, PipelinedHeadParsesAfterReset) {
    std::string first = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n";
    std::string bytes = first + "GET /second HTTP/1.1\r\nHost: a\r\n\r\n";
    RequestParser parser;
    std::size_t consumed = 0;
    ASSERT_EQ(parser.parse_head(bytes, consumed), Result::done);
    EXPECT_EQ(consumed, first.size());
    EXPECT_EQ(parser.message().target(), "/first");
    parser.reset();
    std::size_t second = 0;
    ASSERT_EQ(parser.parse_head(std::string_view(bytes).substr(consumed), second), Result::done);
    EXPECT_EQ(parser.message().target(), "/second");
    EXPECT_EQ(consumed + second, bytes.size());
}

TEST(RequestParser, PipelinedRequestsAfterBodiesParseAfterReset) {
    std::string with_length = post("Content-Length: 5\r\n", "hello");
    std::string chunked = post_chunked("3\r\nabc\r\n0\r\n\r\n");
    std::string bytes = with_length + chunked + get();
    RequestParser parser;
    std::string_view rest = bytes;
    EXPECT_EQ(read_request(parser, rest, at_once(rest)),
              (Outcome{kDone, "hello", with_length.size()}));
    rest.remove_prefix(with_length.size());
    parser.reset();
    EXPECT_EQ(read_request(parser, rest, at_once(rest)), (Outcome{kDone, "abc", chunked.size()}));
    rest.remove_prefix(chunked.size());
    parser.reset();
    EXPECT_EQ(read_request(parser, rest, at_once(rest)), (Outcome{kDone, "", get().size()}));
    EXPECT_EQ(parser.message().method(), http::verb::get);
    EXPECT_FALSE(parser.chunked());
}

TEST(RequestParser, ContentLengthBodyIsDecodedPieceByPiece) {
    RequestParser parser = parsed(post("Content-Length: 10\r\n"));
    EXPECT_TRUE(parser.has_body());
    EXPECT_FALSE(parser.chunked());
    EXPECT_EQ(parser.content_length(), 10u);
    std::string body;
    std::size_t consumed = 0;
    EXPECT_EQ(parser.parse_body("0123", consumed, body), Result::need_more);
    EXPECT_EQ(consumed, 4u);
    EXPECT_EQ(parser.body_received(), 4u);
    EXPECT_EQ(parser.parse_body("456789GET / HTTP/1.1\r\n", consumed, body), Result::done);
    EXPECT_EQ(consumed, 6u);  // the rest starts the next request
    EXPECT_EQ(body, "0123456789");
}

TEST(RequestParser, ContentLengthAboveTheBodyLimitIsRefused413) {
    ParserLimits limits;
    limits.body_limit = 100;
    EXPECT_EQ(verdict_of(post("Content-Length: 100\r\n", std::string(100, 'x')), limits), kDone);
    EXPECT_EQ(verdict_of(post("Content-Length: 101\r\n"), limits), refused(413));
    EXPECT_EQ(verdict_of(post("Content-Length: 99999999999999999999999\r\n")), refused(413));
    EXPECT_EQ(verdict_of(post("Content-Length: 18446744073709551616\r\n")), refused(413));
}

TEST(RequestParser, ContentLengthThatIsNotOneNumberIsRefused400) {
    for (std::string value : {"", "+5", "-5", "5, 5", "0x5", "5 5", "five"}) {
        EXPECT_EQ(verdict_of(post("Content-Length: " + value + "\r\n")), refused(400)) << value;
    }
    EXPECT_EQ(verdict_of(post("Content-Length: 1\r\nContent-Length: 1\r\n", "x")), refused(400));
}

TEST(RequestParser, ChunkedBodyByteByByteEqualsWhole) {
    std::string request = post_chunked("5\r\nhello\r\n1\r\n,\r\nA\r\n world 123\r\n0\r\n\r\n");
    RequestParser parser;
    Outcome whole = read_request(parser, request, at_once(request));
    EXPECT_EQ(whole, (Outcome{kDone, "hello, world 123", request.size()}));
    EXPECT_TRUE(parser.chunked());
    EXPECT_EQ(parser.body_received(), 16u);
    EXPECT_EQ(read_request(request, byte_by_byte(request)), whole);
}

TEST(RequestParser, ChunkExtensionsAreAcceptedAndIgnored) {
    for (std::string extension :
         {";name", ";name=value", ";a;b=1", " ; a = b ;c", ";name=\"quoted \\\" ;value\""}) {
        std::string request = post_chunked("3" + extension + "\r\nabc\r\n0;last\r\n\r\n");
        EXPECT_EQ(read_request(request, at_once(request)), (Outcome{kDone, "abc", request.size()}))
            << extension;
        EXPECT_EQ(verdict_of(request), kDone) << extension;
    }
}

TEST(RequestParser, ChunkSizeLineOverTheLimitIsRefused400) {
    ParserLimits limits;
    limits.chunk_line_limit = 16;
    EXPECT_EQ(
        verdict_of(post_chunked("3;" + std::string(20, 'x') + "\r\nabc\r\n0\r\n\r\n"), limits),
        refused(400));
    EXPECT_EQ(verdict_of(post_chunked(std::string(20, '0') + "3\r\nabc\r\n0\r\n\r\n"), limits),
              refused(400));
}

TEST(RequestParser, ChunkedBodyAboveTheBodyLimitIsRefused413) {
    ParserLimits limits;
    limits.body_limit = 8;
    EXPECT_EQ(verdict_of(post_chunked("5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"), limits), kDone);
    EXPECT_EQ(verdict_of(post_chunked("5\r\nhello\r\n4\r\nabcd\r\n0\r\n\r\n"), limits),
              refused(413));
    EXPECT_EQ(verdict_of(post_chunked("FFFFFFFFFFFFFFFF\r\n")), refused(413));
}

TEST(RequestParser, ChunkSizeThatOverflowsIsRefused400) {
    EXPECT_EQ(verdict_of(post_chunked("10000000000000000\r\nabc\r\n0\r\n\r\n")), refused(400));
    EXPECT_EQ(verdict_of(post_chunked("FFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n")), refused(400));
}

TEST(RequestParser, ChunkSizeThatIsNotBareHexIsRefused400) {
    for (std::string size : {"0x5", " 5", "5 ", "", "-5", "+5", "g", "5 ;"}) {
        EXPECT_EQ(verdict_of(post_chunked(size + "\r\nhello\r\n0\r\n\r\n")), refused(400))
            << escaped(size);
    }
}

// RFC 9112 §7.1.1: whitespace after a chunk size is allowed only before a ';'.
TEST(RequestParser, ChunkSizeFollowedByATabIsRefused400) {
    for (std::string size : {"5\t", "5 \t", "5;a\t"}) {
        EXPECT_EQ(verdict_of(post_chunked(size + "\r\nhello\r\n0\r\n\r\n")), refused(400))
            << escaped(size);
    }
}

TEST(RequestParser, ChunkDataNotFollowedByCrlfIsRefused400) {
    EXPECT_EQ(verdict_of(post_chunked("5\r\nhelloX\r\n0\r\n\r\n")), refused(400));
    EXPECT_EQ(verdict_of(post_chunked("5\r\nhello0\r\n\r\n")), refused(400));
    EXPECT_EQ(verdict_of(post_chunked("5\r\nhello\n0\r\n\r\n")), refused(400));
    EXPECT_EQ(verdict_of(post_chunked("5\r\nhello\rX0\r\n\r\n")), refused(400));
}

TEST(RequestParser, TrailersAreAcceptedAndDiscarded) {
    std::string request =
        post_chunked("3\r\nabc\r\n0\r\nX-Checksum: 900150983cd2\r\nX-Other:  1 \r\n\r\n");
    RequestParser parser;
    Outcome whole = read_request(parser, request, at_once(request));
    EXPECT_EQ(whole, (Outcome{kDone, "abc", request.size()}));
    EXPECT_EQ(parser.message().count("X-Checksum"), 0u);
    EXPECT_EQ(parser.message().count("X-Other"), 0u);
    EXPECT_EQ(read_request(request, byte_by_byte(request)), whole);
}

TEST(RequestParser, ForbiddenTrailersAreRefused400) {
    for (std::string field :
         {"Host: evil", "Content-Length: 5", "Transfer-Encoding: chunked",
          "Authorization: Basic eDp5", "cookie: a=b", "Content-Type: x/y", "Connection: close"}) {
        EXPECT_EQ(verdict_of(post_chunked("3\r\nabc\r\n0\r\n" + field + "\r\n\r\n")), refused(400))
            << field;
    }
}

TEST(RequestParser, TrailerSectionOverTheLimitIsRefused431) {
    ParserLimits limits;
    limits.trailer_limit = 32;
    EXPECT_EQ(verdict_of(post_chunked("0\r\nX-A: 1234567890\r\n\r\n"), limits), kDone);
    EXPECT_EQ(verdict_of(post_chunked("0\r\nX-Pad: " + std::string(40, 'p') + "\r\n\r\n"), limits),
              refused(431));
    EXPECT_EQ(verdict_of(post_chunked("0\r\nX-A: 1234567890\r\nX-B: 1234567890\r\n\r\n"), limits),
              refused(431));
}

TEST(RequestParser, TransferCodingOtherThanChunkedIsRefused501) {
    EXPECT_EQ(verdict_of(post("Transfer-Encoding: gzip, chunked\r\n")), refused(501));
    EXPECT_EQ(verdict_of(post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")),
              refused(501));
}

TEST(RequestParser, TransferEncodingNotEndingInChunkedIsRefused400) {
    for (std::string value :
         {"chunked, gzip", "gzip", "chunked, chunked", ", chunked", "chunked;q=1"}) {
        EXPECT_EQ(verdict_of(post("Transfer-Encoding: " + value + "\r\n")), refused(400)) << value;
    }
    EXPECT_EQ(verdict_of(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n")),
              refused(400));
}

TEST(RequestParser, ChunkedOnHttp10IsRefused400) {
    EXPECT_EQ(verdict_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
              refused(400));
}

TEST(RequestParser, TransferEncodingWithContentLengthIsRefused400) {
    EXPECT_EQ(verdict_of(post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n")),
              refused(400));
    EXPECT_EQ(verdict_of(post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
              refused(400));
}

TEST(RequestParser, HostIsRequiredOnHttp11AndOptionalOnHttp10) {
    EXPECT_EQ(verdict_of("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), refused(400));
    EXPECT_EQ(verdict_of("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), kDone);
}

TEST(RequestParser, TwoHostsAreRefused400) {
    EXPECT_EQ(verdict_of(get("Host: example.com\r\n")), refused(400));
    EXPECT_EQ(verdict_of("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"), refused(400));
}

TEST(RequestParser, InvalidHostIsRefused400) {
    for (std::string host : {"a b", "a/b", "user@a", "a:b", "a:123456", "a:80:80", "[::1", "[]",
                             "[::1]x", "[::g]", "a%2", "caf\xC3\xA9"}) {
        EXPECT_EQ(verdict_of("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"), refused(400))
            << escaped(host);
    }
}

TEST(RequestParser, EmptyHostAndIpLiteralsAreAccepted) {
    for (std::string host :
         {"", "[::1]:8080", "[::1]", "127.0.0.1:80", "xn--caf-dma.example", "a%2Eb"}) {
        EXPECT_EQ(verdict_of("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n"), kDone) << host;
    }
    EXPECT_EQ(parsed("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n").message()[http::field::host],
              "[::1]:8080");
}

TEST(RequestParser, MalformedFieldLinesAreRefused400) {
    for (std::string fields : std::vector<std::string>{
             "X-A: 1\r\n folded\r\n", "X-A: 1\r\n\tfolded\r\n", "X-A : 1\r\n", "X A: 1\r\n",
             "X-A\r\n", ": 1\r\n", "X(A): 1\r\n", "X-A: 1\n", "X-A: a\0b\r\n"s, "X-A: a\rb\r\n",
             "X-A: a\x7f\r\n", "X-A: a\x01\r\n"}) {
        EXPECT_EQ(verdict_of(get(fields)), refused(400)) << escaped(fields);
    }
    EXPECT_EQ(verdict_of("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), refused(400));
}

TEST(RequestParser, ObsTextInFieldValuesIsAccepted) {
    EXPECT_EQ(parsed(get("X-Name: caf\xC3\xA9\r\n")).message()["X-Name"], "caf\xC3\xA9");
}

TEST(RequestParser, WhitespaceAroundFieldValuesIsTrimmed) {
    auto parser = parsed(get("X-A: \t padded  value \t \r\nX-B:tight\r\nX-C:  \r\n"));
    EXPECT_EQ(parser.message()["X-A"], "padded  value");
    EXPECT_EQ(parser.message()["X-B"], "tight");
    EXPECT_EQ(parser.message().count("X-C"), 1u);
    EXPECT_EQ(parser.message()["X-C"], "");
}

TEST(RequestParser, UnsupportedHttpVersionIsRefused505) {
    for (std::string version : {"HTTP/2.0", "HTTP/3.0", "HTTP/0.9"}) {
        EXPECT_EQ(verdict_of("GET / " + version + "\r\nHost: a\r\n\r\n"), refused(505)) << version;
    }
}

// RFC 9110 §2.5: a higher minor version of a major version one implements is processed
// as the highest minor one implements; the header promises `HTTP/1.x`.
// Only the versions prefork speaks; RFC 9110 §2.5 lets a server answer a higher minor
// version as 1.1, but no HTTP/1.2 exists, and a strict server names what it serves.
TEST(RequestParser, OtherVersionsAreRefused505) {
    EXPECT_EQ(verdict_of("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), refused(505));
    EXPECT_EQ(verdict_of("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), refused(505));
}

TEST(RequestParser, MalformedHttpVersionIsRefused400) {
    for (std::string version :
         {"http/1.1", "HTTP/1.10", "HTTP/1", "HTTP/1.1 ", "HTTP 1.1", "HTTP/a.b", "HTTP/11"}) {
        EXPECT_EQ(verdict_of("GET / " + version + "\r\nHost: a\r\n\r\n"), refused(400)) << version;
    }
}

TEST(RequestParser, MalformedRequestLinesAreRefused400) {
    for (std::string line :
         {"GET  / HTTP/1.1", " GET / HTTP/1.1", "GET\t/\tHTTP/1.1", "GET /", "GET",
          "G(T / HTTP/1.1", "GET /caf\xC3\xA9 HTTP/1.1", "GET example.com HTTP/1.1",
          "GET ftp://a/ HTTP/1.1", "CONNECT example.com:443 HTTP/1.1",
          "GET http://user@a/ HTTP/1.1", "GET http:///x HTTP/1.1", "GET http://a#frag HTTP/1.1"}) {
        EXPECT_EQ(verdict_of(line + "\r\nHost: a\r\n\r\n"), refused(400)) << escaped(line);
    }
}

// RFC 9112 §3.2: no form of request-target holds a fragment; the parser refuses one
// after an authority, so it should after a path as well.
TEST(RequestParser, FragmentInTheTargetIsRefused400) {
    for (std::string target : {"/page#section", "http://a/page#section", "/a?q=1#x"}) {
        EXPECT_EQ(verdict_of("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\n"), refused(400))
            << target;
    }
}

}  // namespace
}  // namespace prefork

#include "response_head.hpp"

#include <gtest/gtest.h>

namespace prefork {
namespace {

std::string head_of(const Response& response, HeadFraming how, bool& keep_alive) {
    std::string out = "left over from the last response";
    EXPECT_TRUE(write_response_head(out, response.message(), how, keep_alive));
    return out;
}

TEST(ResponseHead, StatusLineHandlerFieldsThenTheWorkersOwn) {
    Response response = Response::text("hello");
    response.set_header("X-Trace", "abc");
    bool keep_alive = true;
    std::string head =
        head_of(response, {11, Framing::content_length, 5, "Wed, 02 Dec 2026"}, keep_alive);
    EXPECT_TRUE(head.starts_with("HTTP/1.1 200 OK\r\n")) << head;
    EXPECT_NE(head.find("\r\nX-Trace: abc\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nServer: prefork\r\nDate: Wed, 02 Dec 2026\r\n"), std::string::npos);
    EXPECT_NE(head.find("\r\nContent-Length: 5\r\n"), std::string::npos) << head;
    EXPECT_TRUE(head.ends_with("\r\n\r\n"));
    EXPECT_EQ(head.find("Connection:"), std::string::npos) << "keep-alive is 1.1's default";
    EXPECT_EQ(head.find("left over"), std::string::npos);
    EXPECT_TRUE(keep_alive);
}

TEST(ResponseHead, TheWorkersFieldsReplaceTheHandlersButItsConnectionCloseIsHonoured) {
    Response response = Response::text("hello");
    response.set_header("Server", "mine");
    response.set_header("Date", "yesterday");
    response.set_header("Content-Length", "999");
    response.set_header("Transfer-Encoding", "gzip");
    response.set_header("Connection", "close");
    bool keep_alive = true;
    std::string head = head_of(response, {11, Framing::content_length, 5, "today"}, keep_alive);
    EXPECT_FALSE(keep_alive);
    EXPECT_EQ(head.find("mine"), std::string::npos) << head;
    EXPECT_EQ(head.find("yesterday"), std::string::npos) << head;
    EXPECT_EQ(head.find("999"), std::string::npos) << head;
    EXPECT_EQ(head.find("gzip"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nConnection: close\r\n"), std::string::npos) << head;
}

TEST(ResponseHead, ChunkedOrNoFramingAndHttp10KeepAlive) {
    Response response = Response::text("");
    bool keep_alive = true;
    std::string chunked = head_of(response, {11, Framing::chunked, 0, "d"}, keep_alive);
    EXPECT_NE(chunked.find("\r\nTransfer-Encoding: chunked\r\n"), std::string::npos);
    EXPECT_EQ(chunked.find("Content-Length"), std::string::npos);

    std::string none = head_of(response, {11, Framing::none, 0, "d"}, keep_alive);
    EXPECT_EQ(none.find("Content-Length"), std::string::npos);
    EXPECT_EQ(none.find("Transfer-Encoding"), std::string::npos);

    std::string old = head_of(response, {10, Framing::content_length, 0, "d"}, keep_alive);
    EXPECT_TRUE(old.starts_with("HTTP/1.0 200 OK\r\n")) << old;
    EXPECT_NE(old.find("\r\nConnection: keep-alive\r\n"), std::string::npos) << old;
    keep_alive = false;
    std::string old_close = head_of(response, {10, Framing::content_length, 0, "d"}, keep_alive);
    EXPECT_EQ(old_close.find("Connection:"), std::string::npos) << "1.0 closes by default";
}

TEST(ResponseHead, AFieldThatCouldSplitTheResponseIsRefused) {
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"X-Ok", "a\r\nSet-Cookie: evil=1"},
             {"X-Ok", "a\nb"},
             {"X-Ok", std::string("a\0b", 3)},
             {"Bad Name", "v"},
             {"Bad:Name", "v"},
         }) {
        // Response::set_header refuses these; a handler can still reach the message itself.
        Response response = Response::text("x");
        response.message().set(name, value);
        std::string out;
        bool keep_alive = true;
        EXPECT_FALSE(
            write_response_head(out, response.message(), {11, Framing::none, 0, "d"}, keep_alive))
            << name;
    }
}

}  // namespace
}  // namespace prefork

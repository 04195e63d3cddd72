#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <string>
#include <string_view>

namespace prefork {

namespace http = boost::beast::http;

// An HTTP response a handler returns. The worker adds Date, Server, Content-Length and
// Connection, and strips the body for HEAD.
class Response {
  public:
    using Message = http::response<http::string_body>;

    // 200 with an empty body.
    Response();
    // `status` with the given body and content type.
    Response(int status, std::string body, std::string_view content_type);

    // text/plain; charset=utf-8
    static Response text(std::string body, int status = 200);
    // application/json; `body` is already serialized JSON.
    static Response json(std::string body, int status = 200);
    // Any bytes, with their content type.
    static Response bytes(std::string body,
                          std::string_view content_type = "application/octet-stream",
                          int status = 200);
    // `status` with its reason phrase as a text body ("404 Not Found").
    static Response error(int status);

    int status() const { return static_cast<int>(message_.result_int()); }
    Response& set_status(int status);
    // Sets (replaces) a header.
    Response& set_header(std::string_view name, std::string_view value);
    std::string_view header(std::string_view name) const;
    const std::string& body() const { return message_.body(); }
    std::string& body() { return message_.body(); }

    // The underlying Boost.Beast message, for everything else.
    Message& message() { return message_; }
    const Message& message() const { return message_; }

  private:
    Message message_;
};

}  // namespace prefork

#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace prefork {

namespace http = boost::beast::http;

namespace detail {
struct ResponseFile;
}

// An HTTP response a handler returns. The worker adds Date, Server, Content-Length and
// Connection, and strips the body for HEAD.
class Response {
  public:
    using Message = http::response<http::string_body>;

    // 200 with an empty body.
    Response();
    // `status` with the given body and content type (one holding CR, LF or NUL makes the
    // response a 500 when it is sent, as every header that could split it does).
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
    // The regular file at `path` as the body, sent by the kernel straight from the file to
    // the socket (sendfile: no copy in the worker's memory, however large or slow the
    // client). A GET with one byte range gets that part (206, Content-Range), a range past
    // the end 416; other Range values get the whole file. The file is opened now: 404 when
    // there is no such regular file, 403 when it may not be read. Accept-Ranges: bytes.
    static Response file(const std::string& path,
                         std::string_view content_type = "application/octet-stream");

    int status() const { return static_cast<int>(message_.result_int()); }
    Response& set_status(int status);
    // Sets (replaces) a header. Throws std::invalid_argument when `name` is not a token or
    // `value` holds CR, LF or NUL, which could end the head early and forge a response (a
    // handler that throws is answered 500, and the log says why).
    Response& set_header(std::string_view name, std::string_view value);
    std::string_view header(std::string_view name) const;
    const std::string& body() const { return message_.body(); }
    std::string& body() { return message_.body(); }

    // The underlying Boost.Beast message, for everything else.
    Message& message() { return message_; }
    const Message& message() const { return message_; }
    // The open file that is the body (Response::file), or null: then body() is.
    const std::shared_ptr<const detail::ResponseFile>& file_body() const { return file_; }

  private:
    Message message_;
    std::shared_ptr<const detail::ResponseFile> file_;
};

}  // namespace prefork

#pragma once

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace prefork::testing {

namespace http = boost::beast::http;
using HttpResponse = http::response<http::string_body>;

// A blocking HTTP/1.1 client connection for tests: TCP on 127.0.0.1 or a Unix socket.
// Every read gives up after `timeout`, so a test never hangs on a server that does not
// answer; a failure throws boost::system::system_error.
class HttpConnection {
  public:
    explicit HttpConnection(std::uint16_t port,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5));
    explicit HttpConnection(const std::string& unix_path,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5));

    // Sends one request and reads its response (keep-alive unless the headers say otherwise).
    HttpResponse request(http::verb method, const std::string& target, const std::string& body = "",
                         const std::string& content_type = "");
    HttpResponse get(const std::string& target) { return request(http::verb::get, target); }

    // Writes bytes as they are (for pipelining and malformed requests).
    void send_raw(const std::string& bytes);
    // Reads one response; `head` for the answer to a HEAD request.
    HttpResponse read_response(bool head = false);
    // True when the server has closed the connection (the next read sees end of stream).
    bool closed_by_peer();

    int native_handle() { return socket_.native_handle(); }

  private:
    void set_timeout(std::chrono::milliseconds timeout);

    boost::asio::io_context io_;
    boost::asio::generic::stream_protocol::socket socket_;
    boost::beast::flat_buffer buffer_;
    std::chrono::milliseconds timeout_;
};

// One request on a new connection.
HttpResponse http_get(std::uint16_t port, const std::string& target);

// Asks GET `target` (each time on a new connection) until the answer has `status`, for at
// most `timeout`; returns the last status seen.
unsigned wait_for_status(std::uint16_t port, const std::string& target, unsigned status,
                         std::chrono::milliseconds timeout);

}  // namespace prefork::testing

#pragma once

#include <prefork/request.hpp>
#include <prefork/response.hpp>

#include "router.hpp"

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>

#include <cstdint>
#include <memory>
#include <optional>

namespace prefork {

class Server;
namespace detail {
struct PendingResponse;
struct StreamChannel;
}  // namespace detail

// One client connection (TCP or Unix), served one request at a time: read a request, run
// its handler, write the response, then read the next (pipelined requests wait in the
// buffer, so responses go out in order and at most one write is ever in flight).
// Every completion handler holds shared_from_this(), so the connection lives as long as
// an operation on it is pending.
class Connection : public std::enable_shared_from_this<Connection> {
  public:
    // On the worker's io_context's own executor type: no type-erased executor on the hot path.
    using Executor = boost::asio::io_context::executor_type;
    using Socket =
        boost::asio::basic_stream_socket<boost::asio::generic::stream_protocol, Executor>;
    using Timer = boost::asio::basic_waitable_timer<
        std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;

    // `client`: the peer's address for the access log (empty when it is off).
    Connection(Socket socket, Server& server, std::string client = {});
    ~Connection();

    void start();
    // The worker is draining: an idle connection closes after a short grace; a busy one
    // answers its current request with Connection: close.
    void drain();
    // Closes the socket now and leaves the server.
    void close();
    // On the loop: the answer of an asynchronous handler to request `request_id`
    // (ignored when that request is no longer the one waiting).
    void complete(std::uint64_t request_id, Response response);
    // On the loop: a handler starts a streamed response to request `request_id` (see
    // Responder::stream). False when that request is no longer the one waiting.
    bool start_stream(std::uint64_t request_id, Response head,
                      std::shared_ptr<detail::StreamChannel> channel);
    // On the loop: the stream has parts, was finished or was cut off.
    void on_stream_kick(const std::shared_ptr<detail::StreamChannel>& channel);

  private:
    enum class State { reading, handling, writing, streaming, lingering, closed };
    enum class ReadDeadline { idle, request };

    void do_read();
    void read_next_request();
    void on_read_header(boost::system::error_code ec, std::size_t bytes);
    void do_read_body();
    void on_read(boost::system::error_code ec, std::size_t bytes);
    void handle_request();
    void send_error(int status);
    void call_handler(const Router::RouteHandler& handler, Request request);
    void finish_response(Response response);
    enum class Framing { none, content_length, chunked };
    void serialize_head(Framing framing);
    void do_write();
    void on_write(boost::system::error_code ec, std::size_t bytes);
    void continue_stream();
    void on_stream_written(boost::system::error_code ec, std::size_t bytes);
    void end_stream();
    void count_stream_response();
    bool has_unread_input();
    void do_linger();
    void on_linger_read(boost::system::error_code ec);

    void arm_read_deadline(ReadDeadline kind);
    void arm_timer(std::chrono::milliseconds after);
    void disarm_timer();
    void wait_for_deadline();
    void on_timer(boost::system::error_code ec);
    void on_timeout();
    void on_handler_timeout();
    void on_coroutine_done(std::uint64_t request_id, std::exception_ptr error, Response response,
                           const std::string& what);
    void watch_for_disconnect();
    void on_readable_while_handling(std::uint64_t request_id, boost::system::error_code ec);
    bool is_idle() const;

    Socket socket_;
    Server& server_;
    Timer timer_;
    Timer::time_point deadline_ = Timer::time_point::max();  // of the current state
    int timer_waits_ = 0;                                    // outstanding waits on timer_
    boost::beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    Response response_;  // kept here until its write completes
    std::string head_;   // its status line and headers, serialized (capacity reused)
    bool send_body_ = true;
    std::shared_ptr<detail::PendingResponse> pending_;  // an asynchronous handler's answer
    std::uint64_t request_id_ = 0;
    bool head_request_ = false;
    unsigned request_version_ = 11;
    std::chrono::steady_clock::time_point request_started_;
    std::string client_;
    std::string method_, target_;  // of the request being answered, for the access log
    State state_ = State::reading;
    ReadDeadline read_deadline_ = ReadDeadline::idle;
    bool keep_alive_ = true;
    bool timed_out_ = false;
    bool input_left_unread_ = false;
    boost::system::error_code ignored_;
    boost::asio::cancellation_signal cancel_handler_;  // ends a coroutine handler's awaits

    // A streamed response in progress.
    std::shared_ptr<detail::StreamChannel> stream_;
    std::vector<std::string> stream_parts_;  // being written
    std::size_t stream_payload_ = 0;         // their bytes
    std::string chunk_size_line_;            // "1f40\r\n" of the chunk being written
    std::uint64_t stream_bytes_ = 0;         // written so far, for the access log
    bool stream_writing_ = false;
    bool stream_chunked_ = true;   // false for an HTTP/1.0 client: ends with the connection
    bool stream_has_body_ = true;  // false for HEAD, 204, 304
    bool stream_ending_ = false;   // the final chunk is being written
};

}  // namespace prefork

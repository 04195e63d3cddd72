#pragma once

#include <prefork/request.hpp>
#include <prefork/response.hpp>

#include "connection_socket.hpp"
#include "idle_entry.hpp"
#include "lazy_deadline.hpp"
#include "read_buffer.hpp"
#include "request_parser.hpp"
#include "requests_in_flight.hpp"
#include "response_head.hpp"
#include "router.hpp"
#include "stream_writer.hpp"

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <optional>

namespace prefork {

class Server;
namespace detail {
struct PendingResponse;
struct StreamChannel;
}  // namespace detail

// One client connection (TCP or Unix), served one request at a time: read a request's
// head, route it, read its body (only for a request that has a route and fits the
// limits), run its handler, write the response, then read the next (pipelined requests
// wait in the buffer, so responses go out in order and at most one write is ever in
// flight; the responses to a burst of them go out together, in one write: do_write). Every
// completion handler holds shared_from_this(), so the connection lives as long as an operation on
// it is pending.
//
// States: reading (idle: no byte of the next request yet, under the idle timeout; head:
// under the header timeout from the request's first byte; body: under the body
// inactivity timeout) -> handling (under the handler timeout) -> writing or streaming
// (under the write inactivity timeout; a stream may also have an idle timeout) -> reading
// again, or lingering (our side closed, reading what the client still sends) -> closed.
// A request refused or answered from its head alone goes from reading to writing.
class Connection : public std::enable_shared_from_this<Connection> {
  public:
    // On the worker's io_context's own executor type: no type-erased executor on the hot path.
    using Executor = boost::asio::io_context::executor_type;
    using Socket = ConnectionSocket;

    // Room in a connection's input beyond the header limit: a read may bring the start of
    // the next request along with the end of a head.
    static constexpr std::size_t kInputMargin = 4096;
    // At most this many bytes of responses to pipelined requests wait to be written
    // together: a client that pipelines without reading makes the worker hold no more.
    static constexpr std::size_t kBatchLimit = 64 * 1024;

    // `client`: the peer's address for the access log (empty when it is off).
    Connection(Socket socket, Server& server, std::string client = {});
    ~Connection();

    // Serves the connection. `handed_over`: another worker served it before (it is a
    // keep-alive connection between requests), and read `already_read` of it (at most the
    // header limit and kInputMargin).
    void start(std::string_view already_read = {}, bool handed_over = false);
    // The worker is draining. Handing off connections: one between requests goes at once,
    // a busy one when its response is written. Otherwise an idle connection closes after a
    // short grace, and a busy one answers its current request with Connection: close.
    // Goes to another worker now, if it is idle between requests (Server::shed); false if not.
    bool shed_now();
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

    // Waiting for a request with nothing of it received (the server may close it).
    bool is_idle() const;
    IdleEntry& idle_entry() { return idle_entry_; }

  private:
    enum class State { reading, handling, writing, streaming, lingering, closed };
    enum class ReadPhase { idle, head, body };
    enum class ReadDeadline { idle, request };
    using WriteDone = void (Connection::*)(boost::system::error_code, std::size_t);
    using Step = void (Connection::*)();

    // Every completion handler: `member` of this connection, called with `bound` and then
    // the operation's results; the connection lives until it has run.
    template <class Member, class... Bound>
    auto bound(Member member, Bound... bound_args) {
        return [self = shared_from_this(), member,
                ... bound_args = std::move(bound_args)](auto&&... results) mutable {
            ((*self).*member)(bound_args..., std::forward<decltype(results)>(results)...);
        };
    }

    void do_handshake();
    void on_handshake_ready(boost::system::error_code ec);
    void do_read();
    bool goes_to_another_worker();
    bool ends_here() const;
    void hand_off();
    void read_next_request();
    void wait_readable();
    void on_readable(boost::system::error_code ec);
    void read_input();
    std::size_t read_first_bytes(char* space, std::size_t room, boost::system::error_code& ec);
    void parse_input();
    bool on_head();
    void begin_request();
    void answer_from_head(Response response);
    void send_continue();
    void on_continue_sent(boost::system::error_code ec, std::size_t bytes);
    bool reserve_body(std::uint64_t bytes);
    void release_body();
    void refuse_request();
    void handle_request();
    void send_error(int status);
    void call_handler(const Router::RouteHandler& handler, Request request);
    struct HandlerCancel {
        boost::asio::cancellation_signal signal;
        bool cancelled = false;  // by the connection: the coroutine's aborted awaits are no news
    };
    void spawn_responding_coroutine(const RespondingCoroutineHandler& handler, Request request,
                                    const std::string& what);
    void on_responding_coroutine_done(const std::string& what,
                                      const std::shared_ptr<HandlerCancel>& cancel,
                                      std::exception_ptr error);
    void cancel_handler();
    void finish_response(Response response);
    void finish_file_response();
    bool serialize_head(Framing framing, std::uint64_t content_length = 0);
    void answer_unsafe_response();
    void do_write();
    bool joins_the_batch(std::size_t body_size) const;
    void flush_batch(Step then);
    void on_batch_flushed(boost::system::error_code ec, std::size_t bytes);
    void release_batch();
    void count_written(std::size_t bytes);
    void write_out(std::size_t written, WriteDone done);
    void do_write_some();
    void note_write_progress();
    std::size_t unsent_bytes();
    void on_write_timeout();
    void on_write_some(boost::system::error_code ec, std::size_t bytes);
    void on_write(boost::system::error_code ec, std::size_t bytes);
    void on_file_head_written(boost::system::error_code ec, std::size_t bytes);
    void send_file();
    void send_file_over_tls();
    void on_file_writable(boost::system::error_code ec);
    void continue_stream();
    void on_stream_written(boost::system::error_code ec, std::size_t bytes);
    void end_stream();
    void cut_off_stream();
    void count_stream_response();
    void response_done();
    bool has_unread_input();
    void do_linger();
    void read_while_lingering();

    void arm_read_deadline(ReadDeadline kind);
    void arm_timer(std::chrono::milliseconds after);
    void disarm_timer();
    void wait_for_deadline();
    void on_timer(boost::system::error_code ec);
    void on_timeout();
    void on_handler_timeout();
    void on_coroutine_done(std::uint64_t request_id, const std::string& what,
                           std::exception_ptr error, Response response);
    void watch_for_disconnect();
    void on_readable_while_handling(std::uint64_t request_id, boost::system::error_code ec);

    Socket socket_;
    Server& server_;
    IdleEntry idle_entry_{this};
    LazyDeadline deadline_;  // of the current state
    ReadBuffer input_;
    RequestParser parser_;
    ReadPhase phase_ = ReadPhase::idle;
    bool head_done_ = false;
    bool read_waiting_ = false;  // a wait for input is outstanding
    // A read found EAGAIN since the last wait for input completed: the next wait needs no
    // system call (EdgeWait). A short read alone is not enough (a FIN may have come with
    // it); with epoll's last report it is (ConnectionSocket::short_read_emptied).
    bool drained_ = false;
    bool reading_at_once_ = false;  // a new client's first read, before any wait
    bool read_short_ = false;       // the last read returned less than it asked for
    EdgeWait input_wait_;
    Request request_;                              // being received
    const Router::RouteHandler* route_ = nullptr;  // its handler
    std::uint64_t body_reserved_ = 0;              // of the worker's body budget, by this request
    std::string range_;                            // its Range header, for a file response
    Response response_;                            // kept here until its write completes
    std::string head_;  // its status line and headers, serialized (capacity reused)
    bool send_body_ = true;
    std::vector<boost::asio::const_buffer> out_;  // what an asynchronous write has left
    std::size_t out_written_ = 0;
    std::size_t unsent_at_progress_ = 0;  // in the kernel's send buffer at the last progress
    WriteDone write_done_ = nullptr;
    // Responses to pipelined requests that wait to go out together, in one write with the
    // first response that cannot wait (Connection::do_write). Empty whenever the connection
    // waits for anything: flush_batch writes it first.
    std::string batch_;
    std::size_t batch_in_write_ = 0;  // of the write in progress, bytes of batch_
    Step after_batch_ = nullptr;      // what flush_batch goes on with
    State state_before_batch_ = State::reading;
    std::uint64_t file_offset_ = 0, file_end_ = 0;  // of a file response's body
    std::uint64_t file_sent_ = 0;
    std::string file_chunk_;  // over TLS: what is being written of the file
    bool handshaking_ = false;
    std::shared_ptr<detail::PendingResponse> pending_;  // an asynchronous handler's answer
    std::uint64_t request_id_ = 0;
    bool head_request_ = false;
    unsigned request_version_ = 11;
    std::chrono::steady_clock::time_point request_started_;
    // When the kernel received the bytes of the next request (the last first read; the
    // kernel's receive timestamp is on the wall clock): its queue time starts there.
    std::chrono::system_clock::time_point input_arrived_ = std::chrono::system_clock::now();
    std::string client_;
    std::string_view method_;     // of the request being answered: a constant, or
    std::string unknown_method_;  // a copy of an extension method
    std::string target_;          // of the request being answered
    InFlightEntry in_flight_;     // points to them while it is
    State state_ = State::reading;
    ReadDeadline read_deadline_ = ReadDeadline::idle;
    bool keep_alive_ = true;
    bool input_left_unread_ = false;
    bool client_closes_ = false;  // the request asked for the connection's end
    bool handed_over_ = false;    // served by another worker before
    bool stays_ = false;          // could not be handed off: served here to its end
    boost::asio::cancellation_signal cancel_handler_;   // ends a coroutine handler's awaits
    std::shared_ptr<HandlerCancel> responding_cancel_;  // of a coroutine with a Responder

    StreamWriter stream_;  // a streamed response in progress
};

}  // namespace prefork

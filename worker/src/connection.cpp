#include "connection.hpp"

#include "fork_guard.hpp"
#include "http_date.hpp"
#include "pending_response.hpp"
#include "server.hpp"
#include "stream_state.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include <array>
#include <charconv>
#include <thread>

#include <sys/socket.h>

#include <cerrno>

namespace prefork {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// "GET /path" of a request, or `known` when the request was moved away already.
std::string describe(const Request& request, const std::string& known) {
    if (!known.empty()) return known;
    return std::string(request.method_string()) + " " + std::string(request.target());
}

}  // namespace

Connection::Connection(Socket socket, Server& server, std::string client)
    : socket_(std::move(socket)),
      server_(server),
      timer_(server.io()),
      client_(std::move(client)) {}

Connection::~Connection() {
    if (socket_.is_open()) fork_guard::remove(socket_.native_handle());
    if (stream_) stream_->close();  // no writer may wait for a connection that is gone
}

void Connection::start() {
    error_code ignored;
    socket_.non_blocking(true, ignored);  // do_write() tries a direct write first
    do_read();
}

bool Connection::is_idle() const {
    return state_ == State::reading && buffer_.size() == 0 && !(parser_ && parser_->got_some());
}

// --- reading a request ---------------------------------------------------------------------

void Connection::do_read() {
    state_ = State::reading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits().header_limit));
    parser_->body_limit(server_.limits().body_limit);
    arm_read_deadline(buffer_.size() == 0 ? ReadDeadline::idle : ReadDeadline::request);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](error_code ec, std::size_t bytes) {
                                self->on_read_header(ec, bytes);
                            });
}

// The header is in: a request without a body is complete; a client that waits for
// "100 Continue" before sending its body gets it (only now, once the header passed the
// limits: a body too large was refused with 413 before the client sent it).
void Connection::on_read_header(error_code ec, std::size_t bytes) {
    if (state_ == State::closed) return;
    if (ec || timed_out_ || parser_->is_done()) return on_read(ec, bytes);
    server_.totals().bytes_in += bytes;
    const auto& header = parser_->get();
    if (header.version() >= 11 &&
        boost::beast::iequals(header[http::field::expect], "100-continue")) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                          [self = shared_from_this()](error_code ec, std::size_t) {
                              if (self->state_ == State::closed) return;
                              if (ec) return self->close();
                              self->do_read_body();
                          });
        return;
    }
    do_read_body();
}

void Connection::do_read_body() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t bytes) {
                         self->on_read(ec, bytes);
                     });
}

void Connection::on_read(error_code ec, std::size_t bytes) {
    if (state_ == State::closed) return;
    server_.totals().bytes_in += bytes;
    if (timed_out_) {  // whatever the read says: its deadline stopped it
        timed_out_ = false;
        return is_idle() ? close() : send_error(408);
    }
    if (ec == http::error::header_limit) return send_error(431);
    if (ec == http::error::body_limit) return send_error(413);
    if (ec == http::error::end_of_stream || ec == asio::error::eof) return close();
    if (ec && ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
        return send_error(400);  // malformed request
    }
    if (ec) return close();  // reset by the peer, or closed under us: nobody to answer
    // A Transfer-Encoding whose last coding is not chunked leaves the body's end unknown:
    // reading on would take the body for the next request (request smuggling).
    if (parser_->get().count(http::field::transfer_encoding) != 0 && !parser_->chunked()) {
        return send_error(400);
    }
    handle_request();
}

// --- answering it --------------------------------------------------------------------------

void Connection::handle_request() {
    state_ = State::handling;
    disarm_timer();
    server_.count_request();
    ++request_id_;
    request_started_ = std::chrono::steady_clock::now();

    Request request(parser_->release());
    if (server_.access_log().enabled()) {
        method_ = std::string(request.method_string());
        target_ = std::string(request.target());
    }
    keep_alive_ = request.keep_alive() && !server_.draining();
    head_request_ = request.method() == http::verb::head;
    request_version_ = request.message().version();

    Router::Match match = server_.router().match(request);
    if (match.handler == nullptr) {
        Response response = Response::error(match.status);
        if (match.status == 405) response.set_header("Allow", match.allow);
        return finish_response(std::move(response));
    }
    call_handler(*match.handler, std::move(request));
}

void Connection::call_handler(const Router::RouteHandler& handler, Request request) {
    std::string what;  // for the log, should the handler throw
    try {
        if (auto* sync = std::get_if<Handler>(&handler)) {
            return finish_response((*sync)(request));
        }
        if (auto* coroutine = std::get_if<CoroutineHandler>(&handler)) {
            what = describe(request, what);
            asio::co_spawn(
                socket_.get_executor(), (*coroutine)(std::move(request)),
                asio::bind_cancellation_slot(
                    cancel_handler_.slot(), [self = shared_from_this(), id = request_id_, what](
                                                std::exception_ptr error, Response response) {
                        self->on_coroutine_done(id, error, std::move(response), what);
                    }));
            arm_timer(server_.limits().handler_timeout);
            watch_for_disconnect();
            return;
        }
        pending_ = std::make_shared<detail::PendingResponse>();
        pending_->loop = socket_.get_executor();
        pending_->loop_thread = std::this_thread::get_id();
        pending_->connection = weak_from_this();
        pending_->request_id = request_id_;
        what = std::string(request.method_string()) + " " + std::string(request.target());
        std::get<AsyncHandler>(handler)(std::move(request), Responder(pending_));
        if (state_ == State::handling) arm_timer(server_.limits().handler_timeout);
        if (state_ == State::handling) watch_for_disconnect();
        return;
    } catch (const std::exception& error) {
        what = describe(request, what) + ": handler threw: " + error.what();
    } catch (...) {
        what = describe(request, what) + ": handler threw a non-standard exception";
    }
    log::error(what);
    if (pending_) {  // the 500 below is this request's answer; a stream it started is over
        pending_->sent = true;
        pending_->abandon();
    }
    finish_response(Response::error(500));
}

// An asynchronous handler that has not answered in time: 503, and its Responder's send()
// from now on is a no-op that reports false.
void Connection::on_handler_timeout() {
    cancel_handler_.emit(asio::cancellation_type::terminal);
    if (pending_) {
        pending_->sent = true;
        pending_->abandon();
    }
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(server_.limits().handler_timeout);
    log::warning("a handler did not answer within ", ms.count(), " ms: answering 503");
    keep_alive_ = false;
    finish_response(Response::error(503));
}

void Connection::on_coroutine_done(std::uint64_t request_id, std::exception_ptr error,
                                   Response response, const std::string& what) {
    if (state_ != State::handling || request_id != request_id_) return;  // cancelled, or late
    if (error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            log::error(what, ": handler threw: ", e.what());
        } catch (...) {
            log::error(what, ": handler threw a non-standard exception");
        }
        response = Response::error(500);
    }
    finish_response(std::move(response));
}

// While a handler works, the connection is not read: watch it, so that a client that
// hangs up cancels the handler (its awaits end, its Responder's send() reports false).
void Connection::watch_for_disconnect() {
    socket_.async_wait(Socket::wait_read,
                       [self = shared_from_this(), id = request_id_](error_code ec) {
                           self->on_readable_while_handling(id, ec);
                       });
}

void Connection::on_readable_while_handling(std::uint64_t request_id, error_code ec) {
    if (ec || (state_ != State::handling && state_ != State::streaming) ||
        request_id != request_id_)
        return;
    char byte;
    ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        log::debug("the client left while its request was handled: cancelling the handler");
        return close();
    }
    // Bytes of a pipelined request: they wait in the kernel until this one is answered.
}

void Connection::complete(std::uint64_t request_id, Response response) {
    if (state_ != State::handling || request_id != request_id_) return;
    finish_response(std::move(response));
}

void Connection::send_error(int status) {
    request_started_ = std::chrono::steady_clock::now();
    method_ = "-";
    target_ = "-";
    keep_alive_ = false;
    input_left_unread_ = true;  // the rest of a refused request may still be arriving
    head_request_ = false;
    request_version_ = 11;
    finish_response(Response::error(status));
}

// Answers with `response`: its head serialized into head_, then head and body written.
void Connection::finish_response(Response response) {
    pending_.reset();
    if (server_.draining()) keep_alive_ = false;  // the worker is stopping: last response here
    response_ = std::move(response);
    auto& message = response_.message();
    unsigned status = message.result_int();
    bool no_content = status < 200 || status == 204 || status == 304;
    if (no_content) message.body().clear();
    serialize_head(no_content ? Framing::none : Framing::content_length);
    send_body_ = !head_request_ && !no_content;
    do_write();
}

// Writes response_'s status line and headers into a buffer the connection keeps (no
// allocation once it has grown), with the headers the worker owns: Server, Date (formatted
// once a second), the framing (Content-Length of the body, or Transfer-Encoding: chunked)
// and Connection. A handler's own values of those are replaced, except that its
// "Connection: close" is honoured.
void Connection::serialize_head(Framing framing) {
    const auto& message = response_.message();
    head_.clear();
    head_ += request_version_ == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    char digits[24];
    auto [status_end, status_ec] =
        std::to_chars(digits, digits + sizeof digits, message.result_int());
    head_.append(digits, status_end);
    head_ += ' ';
    head_ += message.reason();
    head_ += "\r\n";
    for (const auto& field : message) {
        switch (field.name()) {
            case http::field::connection:
                if (boost::beast::iequals(field.value(), "close")) keep_alive_ = false;
                continue;
            case http::field::server:
            case http::field::date:
            case http::field::content_length:
            case http::field::transfer_encoding:
                continue;
            default:
                break;
        }
        head_ += field.name_string();
        head_ += ": ";
        head_ += field.value();
        head_ += "\r\n";
    }
    head_ += "Server: prefork\r\nDate: ";
    head_ += http_date();
    head_ += "\r\n";
    if (framing == Framing::content_length) {
        auto [length_end, length_ec] =
            std::to_chars(digits, digits + sizeof digits, message.body().size());
        head_ += "Content-Length: ";
        head_.append(digits, length_end);
        head_ += "\r\n";
    } else if (framing == Framing::chunked) {
        head_ += "Transfer-Encoding: chunked\r\n";
    }
    if (request_version_ == 10) {
        if (keep_alive_) head_ += "Connection: keep-alive\r\n";
    } else if (!keep_alive_) {
        head_ += "Connection: close\r\n";
    }
    head_ += "\r\n";
}

// --- writing it ----------------------------------------------------------------------------

// Most responses fit the socket's buffer: written at once, with no deadline to arm and
// nothing to wait for. The rest goes out asynchronously, under the write timeout.
void Connection::do_write() {
    state_ = State::writing;
    std::string_view body = send_body_ ? std::string_view(response_.body()) : std::string_view();
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(head_),
                                                 asio::buffer(body.data(), body.size())};
    std::size_t total = head_.size() + body.size();
    error_code ec;
    std::size_t written = socket_.write_some(buffers, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
    }
    if (ec || written == total) return on_write(ec, written);
    arm_timer(server_.limits().write_timeout);
    std::array<asio::const_buffer, 2> rest = buffers;
    if (written < head_.size()) {
        rest[0] += written;
    } else {
        rest[0] = asio::const_buffer();
        rest[1] += written - head_.size();
    }
    asio::async_write(socket_, rest,
                      [self = shared_from_this(), written](error_code ec, std::size_t bytes) {
                          self->on_write(ec, written + bytes);
                      });
}

void Connection::on_write(error_code ec, std::size_t bytes) {
    if (state_ == State::closed) return;
    disarm_timer();
    server_.totals().bytes_out += bytes;
    server_.count_response(client_, method_, target_, response_.message().result_int(), bytes,
                           std::chrono::steady_clock::now() - request_started_);
    response_ = Response();  // frees a large body now, not at the next request
    if (ec) return close();  // the client left (EPIPE, reset) or the write timed out
    if (!keep_alive_) return has_unread_input() ? do_linger() : close();
    read_next_request();
}

// After a response: a pipelined request already in the buffer is read at once. Otherwise
// the read waits until the loop has served the other connections that are ready: the client
// needs a moment to send its next request, and a read now would mostly find nothing (Asio
// always tries a read before it waits for readiness: one failed recv per request). Measured:
// about 7% less CPU per request with 256 keep-alive connections.
void Connection::read_next_request() {
    if (buffer_.size() != 0) return do_read();
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (self->state_ != State::closed) self->do_read();
    });
}

// --- streaming it ---------------------------------------------------------------------------

// The handler's head goes out now; the parts follow as the writers queue them, one chunk
// per write holding every part queued meanwhile, so a fast writer costs few system calls.
bool Connection::start_stream(std::uint64_t request_id, Response head,
                              std::shared_ptr<detail::StreamChannel> channel) {
    if (state_ != State::handling || request_id != request_id_) return false;
    pending_.reset();
    disarm_timer();  // the handler has answered: its timeout no longer applies
    state_ = State::streaming;
    stream_ = std::move(channel);
    stream_bytes_ = 0;
    stream_ending_ = false;
    if (server_.draining()) keep_alive_ = false;

    response_ = std::move(head);
    response_.body().clear();
    unsigned status = response_.message().result_int();
    bool no_content = status < 200 || status == 204 || status == 304;
    stream_has_body_ = !head_request_ && !no_content;
    stream_chunked_ = request_version_ != 10;
    if (!stream_chunked_) keep_alive_ = false;  // the end of the connection ends the body
    // HEAD gets the framing GET would have had.
    serialize_head(stream_chunked_ && !no_content ? Framing::chunked : Framing::none);

    stream_writing_ = true;
    arm_timer(server_.limits().write_timeout);
    asio::async_write(socket_, asio::buffer(head_),
                      [self = shared_from_this()](error_code ec, std::size_t bytes) {
                          self->on_stream_written(ec, bytes);
                      });
    return true;
}

void Connection::on_stream_kick(const std::shared_ptr<detail::StreamChannel>& channel) {
    if (state_ != State::streaming || channel != stream_ || stream_writing_) return;
    continue_stream();
}

void Connection::continue_stream() {
    bool finished = false;
    bool cut_off = false;
    {
        std::lock_guard lock(stream_->mutex);
        stream_->kick_posted = false;
        for (auto& part : stream_->parts) {
            stream_payload_ += part.size();
            stream_parts_.push_back(std::move(part));
        }
        stream_->parts.clear();
        finished = stream_->finished;
        cut_off = stream_->cut_off;
    }
    static constexpr std::string_view kCrLf = "\r\n";
    static constexpr std::string_view kLastChunk = "0\r\n\r\n";
    auto on_written = [self = shared_from_this()](error_code ec, std::size_t bytes) {
        self->on_stream_written(ec, bytes);
    };
    if (!stream_parts_.empty()) {
        std::vector<asio::const_buffer> buffers;
        buffers.reserve(stream_parts_.size() + 2);
        if (stream_chunked_) {
            std::array<char, 20> digits{};
            auto [end, ec] =
                std::to_chars(digits.data(), digits.data() + digits.size(), stream_payload_, 16);
            chunk_size_line_.assign(digits.data(), end);
            chunk_size_line_ += kCrLf;
            buffers.push_back(asio::buffer(chunk_size_line_));
        }
        for (const auto& part : stream_parts_) buffers.push_back(asio::buffer(part));
        if (stream_chunked_) buffers.push_back(asio::buffer(kCrLf.data(), kCrLf.size()));
        stream_writing_ = true;
        arm_timer(server_.limits().write_timeout);
        return asio::async_write(socket_, buffers, std::move(on_written));
    }
    if (finished) {
        if (!stream_chunked_) return end_stream();
        stream_ending_ = true;
        stream_writing_ = true;
        arm_timer(server_.limits().write_timeout);
        return asio::async_write(socket_, asio::buffer(kLastChunk.data(), kLastChunk.size()),
                                 std::move(on_written));
    }
    if (cut_off) {
        // A reset, not an orderly close: to an HTTP/1.0 client (no chunks) an orderly close
        // would look like the end of a complete body.
        log::warning("a streamed response was dropped before finish(): resetting its connection");
        linger reset{1, 0};
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        return close();
    }
    // Nothing to write: the next write, finish() or drop kicks the connection again.
}

void Connection::on_stream_written(error_code ec, std::size_t bytes) {
    if (state_ != State::streaming) return;  // closed meanwhile
    server_.totals().bytes_out += bytes;
    stream_bytes_ += bytes;
    stream_writing_ = false;
    disarm_timer();
    if (ec) return close();  // the client left (EPIPE, reset) or stopped reading
    if (stream_ending_ || !stream_has_body_) return end_stream();

    // What was written leaves the buffer: room for the writers.
    std::shared_ptr<detail::StreamWaiter> resumed;
    {
        std::lock_guard lock(stream_->mutex);
        stream_->buffered -= std::min(stream_->buffered, stream_payload_);
        if (stream_->waiter && stream_->buffered < stream_->limit) {
            stream_->buffered += stream_->waiting_part.size();
            stream_->parts.push_back(std::move(stream_->waiting_part));
            stream_->waiting_part.clear();
            resumed = std::move(stream_->waiter);
            stream_->waiter.reset();
        }
    }
    stream_->room.notify_all();
    stream_parts_.clear();
    stream_payload_ = 0;
    if (resumed) resumed->complete({});
    continue_stream();
}

void Connection::count_stream_response() {
    server_.count_response(client_, method_, target_, response_.message().result_int(),
                           stream_bytes_, std::chrono::steady_clock::now() - request_started_);
}

void Connection::end_stream() {
    auto channel = std::move(stream_);
    stream_.reset();
    channel->close();  // writes from now on report false
    count_stream_response();
    response_ = Response();
    if (!keep_alive_) return has_unread_input() ? do_linger() : close();
    read_next_request();
}

// --- closing -------------------------------------------------------------------------------

bool Connection::has_unread_input() {
    error_code ec;
    return input_left_unread_ || buffer_.size() > 0 || socket_.available(ec) > 0;
}

// Closes our side first and reads what the client still sends until it closes too, so
// that unread input never turns our close into a reset that could destroy the response.
void Connection::do_linger() {
    state_ = State::lingering;
    error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
    arm_timer(server_.limits().linger_timeout);
    buffer_.clear();
    socket_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_linger_read(ec); });
}

void Connection::on_linger_read(error_code ec) {
    if (state_ == State::closed) return;
    if (ec) return close();
    socket_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_linger_read(ec); });
}

void Connection::drain() {
    // A busy connection answers its current request with Connection: close; an idle one
    // gets a short grace in which a request already on its way is still answered.
    if (is_idle()) arm_read_deadline(ReadDeadline::idle);
}

void Connection::close() {
    if (state_ == State::closed) return;
    state_ = State::closed;
    if (pending_) pending_->abandon();
    pending_.reset();
    if (stream_) {  // cut off: the client gone, or a write that timed out
        auto channel = std::move(stream_);
        stream_.reset();
        count_stream_response();
        channel->close();
        channel->pending->abandon();
    }
    cancel_handler_.emit(asio::cancellation_type::terminal);
    error_code ignored;
    timer_.cancel();
    fork_guard::remove(socket_.native_handle());
    socket_.close(ignored);
    server_.remove(this);
}

// --- deadlines -----------------------------------------------------------------------------

void Connection::arm_read_deadline(ReadDeadline kind) {
    read_deadline_ = kind;
    const ServerLimits& limits = server_.limits();
    if (kind == ReadDeadline::request) return arm_timer(limits.header_timeout);
    arm_timer(server_.draining() ? limits.drain_idle_grace : limits.idle_timeout);
}

// Deadlines are kept lazily: one wait is outstanding at a time, and moving a deadline later
// (as every request does) only changes deadline_; the wait, when it fires, waits again for
// what is left. Only a deadline earlier than the outstanding wait re-arms the timer.
void Connection::arm_timer(std::chrono::milliseconds after) {
    deadline_ = Timer::clock_type::now() + after;
    if (timer_waits_ > 0 && timer_.expiry() <= deadline_) return;
    wait_for_deadline();
}

void Connection::disarm_timer() {
    deadline_ = Timer::time_point::max();
}

void Connection::wait_for_deadline() {
    timer_.expires_at(deadline_);  // an outstanding wait ends with operation_aborted
    ++timer_waits_;
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_timer(ec); });
}

void Connection::on_timer(error_code ec) {
    --timer_waits_;
    if (ec || state_ == State::closed || timer_waits_ > 0) return;
    if (deadline_ == Timer::time_point::max()) return;                     // no deadline now
    if (Timer::clock_type::now() < deadline_) return wait_for_deadline();  // moved later
    deadline_ = Timer::time_point::max();
    on_timeout();
}

void Connection::on_timeout() {
    switch (state_) {
        case State::reading:
            if (read_deadline_ == ReadDeadline::idle && !is_idle()) {
                return arm_read_deadline(ReadDeadline::request);  // a request is arriving
            }
            timed_out_ = true;
            // Cancel the read in flight, and make any read the parser starts after it end at
            // once: the deadline holds even if a read had just completed.
            socket_.cancel();
            socket_.shutdown(Socket::shutdown_receive, ignored_);
            return;
        case State::writing:
        case State::lingering:
            return close();
        case State::streaming:  // a write the client does not take; not a slow writer
            if (stream_writing_) close();
            return;
        case State::handling:
            return on_handler_timeout();
        case State::closed:
            return;
    }
}

}  // namespace prefork

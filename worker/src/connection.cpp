#include "connection.hpp"

#include "byte_range.hpp"
#include "fork_guard.hpp"
#include "http_date.hpp"
#include "pending_response.hpp"
#include "response_file.hpp"
#include "response_head.hpp"
#include "server.hpp"
#include "stream_state.hpp"
#include "stream_writer.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <charconv>
#include <cstring>
#include <span>
#include <thread>
#include <utility>

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace prefork {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Room in the read buffer beyond the header limit: a head that ends just under the limit
// and the start of what follows it.
// What one connection sends of a file before the loop serves the others.
constexpr std::uint64_t kFileBytesPerTurn = 4 << 20;
// What a file response over TLS reads at a time: four full records.
constexpr std::size_t kFileChunk = 64 * 1024;

// "GET /path" of a request, or `known` when the request was moved away already.
std::string describe(const Request& request, const std::string& known) {
    if (!known.empty()) return known;
    if (request.target().empty()) return "a request";  // moved into a synchronous handler
    return std::string(request.method_string()) + " " + std::string(request.target());
}

// One line for what a coroutine handler let out.
void log_handler_error(const std::string& what, std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        log::error(what, ": handler threw: ", e.what());
    } catch (...) {
        log::error(what, ": handler threw a non-standard exception");
    }
}

std::string describe_request(std::string_view method, const std::string& target) {
    if (method.empty()) return "a request";
    return std::string(method) + " " + target;
}

}  // namespace

Connection::Connection(Socket socket, Server& server, std::string client)
    : socket_(std::move(socket)),
      server_(server),
      deadline_(server.io()),
      input_(server.limits().header_limit + kInputMargin),
      parser_(server.parser_limits()),
      client_(std::move(client)) {}

Connection::~Connection() {
    if (socket_.is_open()) fork_guard::remove(socket_.native_handle());
    if (stream_.active()) stream_.channel()->close();  // no writer may wait for us
    release_body();
}

void Connection::start(std::string_view already_read, bool handed_over) {
    handed_over_ = handed_over;
    while (!already_read.empty()) {
        auto [space, room] = input_.prepare();
        if (room == 0) break;  // Server::adopt admits no more than fits
        std::size_t n = std::min(room, already_read.size());
        std::memcpy(space, already_read.data(), n);
        input_.commit(n);
        already_read.remove_prefix(n);
    }
    if (socket_.is_tls() && !socket_.tls()->established()) {
        handshaking_ = true;
        arm_timer(server_.limits().handshake_timeout);
        return do_handshake();
    }
    do_read();
}

// --- the TLS handshake ---------------------------------------------------------------------

// Under the handshake timeout: a client that sends nothing, or half a ClientHello, is let
// go (on_timeout: reading, idle). A client that fails its handshake is let go quietly.
void Connection::do_handshake() {
    error_code ec;
    std::string reason;
    socket_.tls()->handshake(ec, reason);
    if (ec == asio::error::would_block) {
        if (socket_.tls()->wants_write()) {
            return socket_.async_wait(Socket::wait_write, bound(&Connection::on_handshake_ready));
        }
        // OpenSSL read the socket until it was empty: a wait that costs no system call
        // (Asio's would set O_NONBLOCK again with an ioctl and re-arm with an epoll_ctl).
        return socket_.async_wait_input(
            input_wait_, shared_from_this(),
            [](void* connection, const error_code& ec) {
                static_cast<Connection*>(connection)->on_handshake_ready(ec);
            },
            this);
    }
    if (ec) {
        ++server_.totals().tls_handshake_failures;
        log::debug("a TLS handshake failed: ", reason);
        return close();
    }
    handshaking_ = false;
    server_.count_handshake(socket_.tls()->resumed());
    disarm_timer();
    do_read();
}

void Connection::on_handshake_ready(error_code ec) {
    if (state_ == State::closed) return;
    if (ec) return close();
    do_handshake();
}

bool Connection::is_idle() const {
    return state_ == State::reading && phase_ == ReadPhase::idle;
}

// --- reading a request ---------------------------------------------------------------------

// The next request: parsed at once when it is in the buffer already (pipelined), otherwise
// awaited with no buffer held.
void Connection::do_read() {
    // Before it waits for input, or leaves: the responses batched so far go out.
    if (!batch_.empty() && (input_.empty() || server_.hands_off_connections())) {
        return flush_batch(&Connection::do_read);
    }
    if (goes_to_another_worker()) return hand_off();
    state_ = State::reading;
    parser_.reset();
    head_done_ = false;
    route_ = nullptr;
    if (!input_.empty()) {
        phase_ = ReadPhase::head;
        arm_read_deadline(ReadDeadline::request);
        return parse_input();
    }
    phase_ = ReadPhase::idle;
    input_.release();
    // A keep-alive connection between requests (one handed over by another worker, too).
    if (request_id_ > 0 || handed_over_) server_.mark_idle(*this);
    arm_read_deadline(ReadDeadline::idle);
    // A new client's first request has often arrived with its connection: read at once, not
    // after a wait that would tell so (an epoll_ctl and a turn of the loop saved). When such
    // reads have mostly found nothing lately, wait (the socket's first wait needs no read).
    if (request_id_ == 0 && !handed_over_) {
        // Over TLS, the first request mostly comes with the end of the handshake.
        if (socket_.is_tls()) return read_input();
        if (!server_.reads_new_client_at_once()) return wait_readable();
        reading_at_once_ = true;
        return read_input();
    }
    // Between requests, a wait (for a TCP socket one that costs no system call, unless epoll
    // reported a FIN with the last request; see wait_readable). Not a read at once: under load it
    // would serve the connections whose next request is already in before those epoll has reported,
    // which then wait for whole turns of the loop (a p99 of 0.6 s at 4096 connections).
    wait_readable();
}

// Between requests, with nothing of the next one parsed: what was read of it (nothing, part
// of a head, whole pipelined requests) leaves with the socket, and the rest is still in the
// kernel, so the next worker serves every byte once and in order. This worker never touches
// the socket again: released, not closed (the master holds it in flight; no FIN is sent).
// Handing off, and its input fits the message (a header limit above 44 KiB could make it
// not): otherwise it is served here to the end of its next request, as in a stop.
// Shed for a worker with fewer connections (Server::shed): only one that has finished a
// request, and with nothing of the next one read (so nothing to flush or to carry).
bool Connection::goes_to_another_worker() {
    if (stays_) return false;
    if (socket_.is_tls()) {
        // Its session lives in this process: it cannot go (see drain).
        if (server_.hands_off_connections()) stays_ = true;
        return false;
    }
    if (!server_.hands_off_connections()) {
        return (request_id_ > 0 || handed_over_) && input_.empty() && batch_.empty() &&
               server_.takes_one_to_shed();
    }
    if (Server::fits_a_hand_off(input_.size())) return true;
    stays_ = true;
    ++server_.totals().handoff_fallbacks;
    return false;
}

bool Connection::shed_now() {
    if (!is_idle() || socket_.is_tls() || !input_.empty() || !batch_.empty() ||
        !server_.takes_one_to_shed()) {
        return false;
    }
    hand_off();  // unlinks it from the idle list
    return true;
}

// No more requests after the current one here: the worker stops, or this connection could
// not be handed off.
bool Connection::ends_here() const {
    return server_.closes_connections() || stays_;
}

void Connection::hand_off() {
    cancel_handler();  // a coroutine that went on after its answer
    fork_guard::remove(socket_.native_handle());
    int fd = socket_.release();  // ends the waits in progress (operation_aborted)
    if (fd < 0) {
        fork_guard::add(socket_.native_handle());
        return close();
    }
    std::string bytes(input_.data());
    input_.clear();
    state_ = State::closed;
    idle_entry_.unlink();
    deadline_.cancel();
    release_body();
    server_.hand_off(UniqueFd(fd), std::move(bytes));
    server_.remove(this);  // may destroy this connection
}

// After a response: a pipelined request already in the buffer is parsed at once; otherwise
// the wait for the next one starts at once too. It reads nothing (the read comes when epoll
// reports input, after the other connections that are ready), and a turn of the loop before
// it would cost an allocation per request.
void Connection::read_next_request() {
    if (state_ != State::closed) do_read();
}

// Input is read once the socket says it has some (one recv per readiness, none that is
// bound to fail), into a buffer that never grows past the header limit and a margin.
void Connection::wait_readable() {
    if (!batch_.empty()) return flush_batch(&Connection::wait_readable);
    if (read_waiting_) return;
    read_waiting_ = true;
    if (socket_.is_tls() && socket_.tls()->wants_write()) {
        // OpenSSL must send before it reads on (its answer to a KeyUpdate, into a full
        // socket): the input may be there already, so no readable edge would come.
        return socket_.async_wait(Socket::wait_write, bound(&Connection::on_readable));
    }
    if (socket_.holds_input()) {  // decrypted already: the socket would not say so
        return asio::post(socket_.get_executor(), bound(&Connection::on_readable, error_code{}));
    }
    if (!drained_ && socket_.in_epoll() && !(read_short_ && socket_.short_read_emptied())) {
        return socket_.async_wait(Socket::wait_read, bound(&Connection::on_readable));
    }
    socket_.async_wait_input(
        input_wait_, shared_from_this(),
        [](void* connection, const error_code& ec) {
            static_cast<Connection*>(connection)->on_readable(ec);
        },
        this);
}

void Connection::on_readable(error_code ec) {
    read_waiting_ = false;
    drained_ = false;
    if (state_ == State::lingering) return ec ? close() : read_while_lingering();
    if (state_ != State::reading) return;  // answered (a timeout, a refusal) or closed
    if (ec) return close();
    read_input();
}

void Connection::read_input() {
    auto [space, room] = input_.prepare();
    // Never full: the parser refuses a head before it fills the buffer, and takes every
    // byte of a body it is given.
    error_code ec;
    std::size_t bytes = phase_ == ReadPhase::idle ? read_first_bytes(space, room, ec)
                                                  : socket_.read_now(space, room, ec);
    bool found_nothing = ec == asio::error::would_block || ec == asio::error::try_again;
    if (std::exchange(reading_at_once_, false)) server_.count_read_at_once(!found_nothing);
    if (found_nothing) {
        drained_ = read_short_ = true;
        if (phase_ == ReadPhase::idle) input_.release();  // an idle connection holds no buffer
        return wait_readable();
    }
    if (ec) {
        // The client closed: normal between requests; in the middle of one, it may still
        // read an answer. A reset: nobody to answer.
        if (ec == asio::error::eof && phase_ != ReadPhase::idle) return send_error(400);
        return close();
    }
    // Short: the socket was emptied, but for what may end a read early (a FIN, urgent data,
    // a Unix socket's passed descriptors): EAGAIN proves that no edge is still owed, and so
    // does epoll's last report for a TCP socket (short_read_emptied).
    drained_ = false;
    read_short_ = bytes < room;
    input_.commit(bytes);
    server_.totals().bytes_in += bytes;
    if (phase_ == ReadPhase::idle) {  // the request's first byte: its header timeout starts
        phase_ = ReadPhase::head;
        server_.mark_busy(*this);
        arm_read_deadline(ReadDeadline::request);
    } else if (phase_ == ReadPhase::body) {
        arm_timer(server_.limits().body_timeout);  // inactivity: each byte moves it
    }
    parse_input();
}

// The head first: a request is routed, and refused or answered from its head, before any
// of its body is read; then the body, as it comes.
void Connection::parse_input() {
    std::size_t consumed = 0;
    if (!head_done_) {
        auto result = parser_.parse_head(input_.data(), consumed);
        if (result == RequestParser::Result::need_more) return wait_readable();
        if (result == RequestParser::Result::refused) return refuse_request();
        input_.consume(consumed);
        head_done_ = true;
        if (!on_head()) return;
    }
    if (!parser_.has_body()) return handle_request();
    if (phase_ != ReadPhase::body) {
        phase_ = ReadPhase::body;
        arm_timer(server_.limits().body_timeout);
    }
    auto& body = request_.message().body();
    std::size_t before = body.size();
    auto result = parser_.parse_body(input_.data(), consumed, body);
    input_.consume(consumed);
    if (parser_.chunked() && !reserve_body(body.size() - before)) {
        return answer_from_head(Response::error(503));
    }
    if (result == RequestParser::Result::refused) return refuse_request();
    if (result == RequestParser::Result::done) return handle_request();
    wait_readable();
}

// The head is in: the request is counted and routed. False when it was answered from its
// head (no route, over a limit) or waits for the interim 100 Continue to be written.
bool Connection::on_head() {
    request_ = Request(parser_.take_message());
    begin_request();
    client_closes_ = !parser_.keep_alive();
    keep_alive_ = !client_closes_ && !ends_here();
    head_request_ = request_.method() == http::verb::head;
    request_version_ = request_.message().version();
    range_.clear();
    if (request_.method() == http::verb::get) {
        auto range = request_.message().find(http::field::range);
        if (range != request_.message().end()) range_.assign(range->value());
    }

    if (request_.target() == "*") {  // OPTIONS *: the server is there
        answer_from_head(Response(200, "", "text/plain; charset=utf-8"));
        return false;
    }
    Router::Match match = server_.router().match(request_);
    if (match.handler == nullptr) {
        Response response = Response::error(match.status);
        if (match.status == 405) response.set_header("Allow", match.allow);
        answer_from_head(std::move(response));
        return false;
    }
    route_ = match.handler;
    if (!parser_.has_body()) return true;
    if (!parser_.chunked() && !reserve_body(parser_.content_length())) {
        answer_from_head(Response::error(503));
        return false;
    }
    if (parser_.expects_continue()) {
        send_continue();
        return false;
    }
    return true;
}

// The first bytes of a request, with the time the kernel received them (SO_TIMESTAMPNS, set
// on the listeners): the start of its queue time. Without a timestamp (a Unix socket), now.
std::size_t Connection::read_first_bytes(char* space, std::size_t room, error_code& ec) {
    if (socket_.is_tls()) {  // the session reads the socket: no timestamp
        std::size_t n = socket_.read_now(space, room, ec);
        if (n > 0) input_arrived_ = std::chrono::system_clock::now();
        return n;
    }
    iovec iov{space, room};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        ec = error_code(errno, boost::system::system_category());
        return 0;
    }
    if (n == 0) {
        ec = asio::error::eof;
        return 0;
    }
    input_arrived_ = std::chrono::system_clock::now();
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec stamp;
            std::memcpy(&stamp, CMSG_DATA(c), sizeof stamp);
            input_arrived_ = std::chrono::system_clock::time_point(
                std::chrono::duration_cast<std::chrono::system_clock::duration>(
                    std::chrono::seconds(stamp.tv_sec) + std::chrono::nanoseconds(stamp.tv_nsec)));
        } else if (c->cmsg_type == SCM_RIGHTS) {
            // Descriptors a client on a Unix socket passed along: none is kept.
            std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                ::close(fd);
            }
        }
    }
    return static_cast<std::size_t>(n);
}

void Connection::begin_request() {
    // The kernel stamps with the wall clock: a clock set back or forward meanwhile gives
    // nonsense, which is dropped rather than counted.
    auto waited = std::chrono::system_clock::now() - input_arrived_;
    if (waited >= waited.zero() && waited < std::chrono::hours(1)) server_.count_queue_time(waited);
    server_.count_request();
    ++request_id_;
    request_started_ = std::chrono::steady_clock::now();
    // Kept for the access log, error lines and the master's report of a hung worker.
    // A known method's name is a constant: only an extension method is copied.
    method_ = request_.method_string();
    if (request_.method() == http::verb::unknown) {
        unknown_method_.assign(method_);
        method_ = unknown_method_;
    }
    target_.assign(request_.target());
    in_flight_.begin(request_started_, method_, target_);
}

// An answer that needs no body: a body already here whole is skipped, so the connection
// can stay open; one still to come is not read, and the connection closes after the answer.
void Connection::answer_from_head(Response response) {
    if (parser_.has_body() && parser_.body_received() == 0 && !parser_.chunked() &&
        input_.size() >= parser_.content_length()) {
        input_.consume(static_cast<std::size_t>(parser_.content_length()));
    } else if (parser_.has_body()) {
        keep_alive_ = false;
        input_left_unread_ = true;
    }
    state_ = State::handling;
    disarm_timer();
    finish_response(std::move(response));
}

// The client waits for this before it sends the body: sent only to a request that has a
// route and fits the limits, so a body that would be refused is never sent at all.
void Connection::send_continue() {
    if (!batch_.empty()) return flush_batch(&Connection::send_continue);  // in order
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    error_code ec;
    std::size_t written = socket_.write_now(asio::buffer(kContinue.data(), kContinue.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
    }
    if (ec) return close();
    if (written == kContinue.size()) return parse_input();
    asio::async_write(socket_, asio::buffer(kContinue.data() + written, kContinue.size() - written),
                      bound(&Connection::on_continue_sent));
}

void Connection::on_continue_sent(error_code ec, std::size_t) {
    if (state_ == State::closed) return;
    if (ec) return close();
    parse_input();
}

// The worker holds at most PREFORK_BODY_BUFFER_LIMIT bytes of request bodies at once: a
// request beyond it gets 503, so many slow uploads cannot exhaust the worker's memory.
bool Connection::reserve_body(std::uint64_t bytes) {
    if (bytes == 0) return true;
    if (!server_.reserve_body(bytes)) return false;
    body_reserved_ += bytes;
    return true;
}

void Connection::release_body() {
    if (body_reserved_ == 0) return;
    server_.release_body(body_reserved_);
    body_reserved_ = 0;
}

// A request the parser refused: its status, Connection: close, and nothing after it is
// read as a request.
void Connection::refuse_request() {
    log::debug("refused a request with ", parser_.status(), ": ", parser_.reason());
    send_error(parser_.status());
}

void Connection::handle_request() {
    state_ = State::handling;
    disarm_timer();
    // A handler that answers later: the responses before its own go out now.
    if (!batch_.empty() && !std::holds_alternative<Handler>(*route_)) {
        return flush_batch(&Connection::handle_request);
    }
    call_handler(*route_, std::move(request_));
}

void Connection::call_handler(const Router::RouteHandler& handler, Request request) {
    std::string what;  // for the log, should the handler throw
    try {
        if (auto* sync = std::get_if<Handler>(&handler)) {
            return finish_response((*sync)(std::move(request)));
        }
        if (auto* coroutine = std::get_if<CoroutineHandler>(&handler)) {
            what = describe(request, what);
            asio::co_spawn(socket_.get_executor(), (*coroutine)(std::move(request)),
                           asio::bind_cancellation_slot(
                               cancel_handler_.slot(),
                               bound(&Connection::on_coroutine_done, request_id_, what)));
            arm_timer(server_.limits().handler_timeout);
            watch_for_disconnect();
            return;
        }
        pending_ = std::make_shared<detail::PendingResponse>();
        pending_->loop = socket_.get_executor();
        pending_->loop_thread = std::this_thread::get_id();
        pending_->connection = weak_from_this();
        pending_->request_id = request_id_;
        what = describe(request, what);
        if (auto* responding = std::get_if<RespondingCoroutineHandler>(&handler)) {
            spawn_responding_coroutine(*responding, std::move(request), what);
        } else {
            std::get<AsyncHandler>(handler)(std::move(request), Responder(pending_));
        }
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

// A coroutine that answers through its Responder may outlive its request (it may go on
// after send()), so it gets a cancellation signal of its own, kept alive by its completion
// handler: the next request's handler never takes over a slot it still uses.
void Connection::spawn_responding_coroutine(const RespondingCoroutineHandler& handler,
                                            Request request, const std::string& what) {
    auto cancel = std::make_shared<HandlerCancel>();
    responding_cancel_ = cancel;
    asio::co_spawn(
        socket_.get_executor(), handler(std::move(request), Responder(pending_)),
        asio::bind_cancellation_slot(
            cancel->signal.slot(), bound(&Connection::on_responding_coroutine_done, what, cancel)));
}

// Its Responder, destroyed with its frame, has answered 500 already if it had not answered
// (and a Stream it dropped unfinished cut the response off); what is left is to say why.
// After the client left or a timeout, the awaits it had in progress ended by our doing.
void Connection::on_responding_coroutine_done(const std::string& what,
                                              const std::shared_ptr<HandlerCancel>& cancel,
                                              std::exception_ptr error) {
    if (error && !cancel->cancelled) log_handler_error(what, error);
}

// Ends the awaits of the handler's coroutine, of either kind (the client left, the handler
// timeout passed, the connection closes).
void Connection::cancel_handler() {
    cancel_handler_.emit(asio::cancellation_type::terminal);
    if (auto responding = std::exchange(responding_cancel_, nullptr)) {
        responding->cancelled = true;
        responding->signal.emit(asio::cancellation_type::terminal);
    }
}

// An asynchronous handler that has not answered in time: 503, and its Responder's send()
// from now on is a no-op that reports false.
void Connection::on_handler_timeout() {
    cancel_handler();
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

void Connection::on_coroutine_done(std::uint64_t request_id, const std::string& what,
                                   std::exception_ptr error, Response response) {
    if (state_ != State::handling || request_id != request_id_) return;  // cancelled, or late
    if (error) {
        log_handler_error(what, error);
        response = Response::error(500);
    }
    finish_response(std::move(response));
}

// While a handler works, the connection is not read: watch it, so that a client that
// hangs up cancels the handler (its awaits end, its Responder's send() reports false).
void Connection::watch_for_disconnect() {
    socket_.async_wait(Socket::wait_read,
                       bound(&Connection::on_readable_while_handling, request_id_));
}

void Connection::on_readable_while_handling(std::uint64_t request_id, error_code ec) {
    if (ec || (state_ != State::handling && state_ != State::streaming) ||
        request_id != request_id_)
        return;
    if (socket_.is_tls()) {
        // Its input is records (a close_notify, too): whether the client shut its side.
        pollfd state{socket_.native_handle(), POLLRDHUP, 0};
        if (::poll(&state, 1, 0) == 1 && (state.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            log::debug("the client left while its request was handled: cancelling the handler");
            return close();
        }
        return;
    }
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
    if (!head_done_) {  // refused before it was a request: nothing to name it by
        request_started_ = std::chrono::steady_clock::now();
        method_ = "-";
        target_ = "-";
    }
    keep_alive_ = false;
    input_left_unread_ = true;  // the rest of a refused request may still be arriving
    head_request_ = false;
    request_version_ = 11;
    finish_response(Response::error(status));
}

// Answers with `response`: its head serialized into head_, then head and body written.
void Connection::finish_response(Response response) {
    pending_.reset();
    if (ends_here()) keep_alive_ = false;  // the worker stops: the last response here
    response_ = std::move(response);
    if (response_.file_body()) {
        if (!batch_.empty()) return flush_batch(&Connection::finish_file_response);
        return finish_file_response();
    }
    auto& message = response_.message();
    unsigned status = message.result_int();
    bool no_content = status < 200 || status == 204 || status == 304;
    if (no_content) message.body().clear();
    if (!serialize_head(no_content ? Framing::none : Framing::content_length,
                        message.body().size())) {
        return answer_unsafe_response();
    }
    send_body_ = !head_request_ && !no_content;
    do_write();
}

// A header set through message(), past set_header's checks, that could end the head early
// and forge a response: the handler's response is not sent.
void Connection::answer_unsafe_response() {
    log::error(describe_request(method_, target_),
               ": the handler's response has a header holding CR, LF or NUL, or a name that is "
               "not a token; answering 500");
    finish_response(Response::error(500));
}

// A file body: the range the request asked for (206, or 416 when none of it exists), then
// the head, then the bytes straight from the file to the socket (sendfile).
void Connection::finish_file_response() {
    auto& message = response_.message();
    std::uint64_t size = response_.file_body()->size;
    file_offset_ = 0;
    file_end_ = size;
    file_sent_ = 0;
    if (message.result_int() == 200 && !range_.empty()) {
        ByteRange range = select_range(range_, size);
        if (range.kind == ByteRange::Kind::part) {
            message.result(http::status::partial_content);
            message.set(http::field::content_range, "bytes " + std::to_string(range.first) + "-" +
                                                        std::to_string(range.last) + "/" +
                                                        std::to_string(size));
            file_offset_ = range.first;
            file_end_ = range.last + 1;
        } else if (range.kind == ByteRange::Kind::unsatisfiable) {
            message.result(http::status::range_not_satisfiable);
            message.set(http::field::content_range, "bytes */" + std::to_string(size));
            file_end_ = 0;
        }
    }
    unsigned status = message.result_int();
    bool no_content = status < 200 || status == 204 || status == 304;
    if (no_content) file_end_ = 0;
    if (!serialize_head(no_content ? Framing::none : Framing::content_length,
                        file_end_ - file_offset_)) {
        return answer_unsafe_response();
    }
    send_body_ = !head_request_ && !no_content && file_end_ > file_offset_;
    if (!send_body_) file_end_ = file_offset_;
    state_ = State::writing;
    error_code ec;
    std::size_t written = socket_.write_now(asio::buffer(head_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
    }
    if (ec) return on_write(ec, written);
    if (written == head_.size()) return on_file_head_written({}, written);
    out_.assign({asio::buffer(head_) + written});
    write_out(written, &Connection::on_file_head_written);
}

void Connection::on_file_head_written(error_code ec, std::size_t bytes) {
    if (ec) return on_write(ec, bytes);
    file_sent_ = bytes;
    send_file();
}

void Connection::on_file_writable(error_code ec) {
    if (state_ != State::writing) return;
    if (ec) return on_write(ec, file_sent_);
    send_file();
}

// sendfile until the body is out or the socket is full (then again once it has room, under
// the write inactivity timeout); a few megabytes per turn of the loop, so one fast reader
// does not hold up the other connections.
void Connection::send_file() {
    if (socket_.is_tls()) return send_file_over_tls();
    int file = response_.file_body()->fd;
    std::uint64_t this_turn = 0;
    while (file_offset_ < file_end_) {
        if (this_turn >= kFileBytesPerTurn) {
            return asio::post(socket_.get_executor(),
                              bound(&Connection::on_file_writable, error_code{}));
        }
        off_t offset = static_cast<off_t>(file_offset_);
        std::size_t count = static_cast<std::size_t>(
            std::min<std::uint64_t>(file_end_ - file_offset_, kFileBytesPerTurn));
        ssize_t sent = ::sendfile(socket_.native_handle(), file, &offset, count);
        if (sent > 0) {
            file_offset_ += static_cast<std::uint64_t>(sent);
            file_sent_ += static_cast<std::uint64_t>(sent);
            this_turn += static_cast<std::uint64_t>(sent);
            continue;
        }
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            note_write_progress();
            socket_.async_wait(Socket::wait_write, bound(&Connection::on_file_writable));
            return;
        }
        if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) {  // the client left
            return on_write(error_code(errno, boost::system::system_category()), file_sent_);
        }
        // The file shrank under us, or cannot be read: the body cannot be completed, and
        // the client must be able to tell (a reset, not an orderly close).
        log::error(describe_request(method_, target_), ": sendfile: ",
                   sent == 0 ? std::string("the file is shorter than it was")
                             : std::string(std::strerror(errno)));
        linger reset{1, 0};
        ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        return on_write(asio::error::broken_pipe, file_sent_);
    }
    disarm_timer();
    on_write({}, file_sent_);
}

// The response's head, into a buffer the connection keeps (no allocation once it has
// grown); the Date is formatted once a second. False when a field could split it.
bool Connection::serialize_head(Framing framing, std::uint64_t content_length) {
    return write_response_head(head_, response_.message(),
                               {request_version_, framing, content_length, http_date()},
                               keep_alive_);
}

// --- writing it ----------------------------------------------------------------------------

// Most responses fit the socket's buffer: written at once, with no deadline to arm and
// nothing to wait for. The rest goes out asynchronously, under the write timeout.
//
// Responses to pipelined requests are batched: while the next request is in the buffer
// already, a response joins the batch and the next request is answered, so a burst of
// pipelined requests costs one write (and one read), not one each. The batch goes out with
// the first response that does not join it, or before the connection waits for anything.
void Connection::do_write() {
    state_ = State::writing;
    std::string_view body = send_body_ ? std::string_view(response_.body()) : std::string_view();
    if (joins_the_batch(body.size())) {
        batch_ += head_;
        batch_ += body;
        count_written(head_.size() + body.size());
        response_done();
        return read_next_request();
    }
    std::array<asio::const_buffer, 3> all = {asio::buffer(batch_), asio::buffer(head_),
                                             asio::buffer(body.data(), body.size())};
    std::span<const asio::const_buffer> buffers(all.begin() + (batch_.empty() ? 1 : 0), all.end());
    batch_in_write_ = batch_.size();
    std::size_t total = batch_.size() + head_.size() + body.size();
    if (!keep_alive_) socket_.hold_until_close();  // the response goes with the FIN
    error_code ec;
    std::size_t written = socket_.write_now(buffers, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
    }
    if (ec || written == total) return on_write(ec, written);
    out_.clear();
    std::size_t skip = written;
    for (const auto& buffer : buffers) {
        if (skip >= buffer.size()) {
            skip -= buffer.size();
            continue;
        }
        out_.push_back(buffer + skip);
        skip = 0;
    }
    write_out(written, &Connection::on_write);
}

bool Connection::joins_the_batch(std::size_t body_size) const {
    return keep_alive_ && !input_.empty() &&
           batch_.size() + head_.size() + body_size <= kBatchLimit;
}

// The batch goes out, then `then`: at once when the socket takes it all (nearly always),
// otherwise once an asynchronous write has taken the rest, under the write timeout.
void Connection::flush_batch(Step then) {
    error_code ec;
    std::size_t written = socket_.write_now(asio::buffer(batch_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        ec = {};
        written = 0;
    }
    if (ec) return close();  // the client left
    if (written == batch_.size()) {
        release_batch();
        return (this->*then)();
    }
    after_batch_ = then;
    state_before_batch_ = state_;
    state_ = State::writing;
    out_.assign({asio::buffer(batch_) + written});
    write_out(written, &Connection::on_batch_flushed);
}

void Connection::on_batch_flushed(error_code ec, std::size_t) {
    release_batch();
    if (ec) return close();  // the client left, or took nothing for the write timeout
    state_ = state_before_batch_;
    // The write's timeout took the place of the reading state's own: it runs again.
    if (state_ == State::reading) {
        if (phase_ == ReadPhase::body) {
            arm_timer(server_.limits().body_timeout);
        } else {
            arm_read_deadline(phase_ == ReadPhase::idle ? ReadDeadline::idle
                                                        : ReadDeadline::request);
        }
    }
    (this->*after_batch_)();
}

// A large batch's buffer is not kept for the life of the connection.
void Connection::release_batch() {
    batch_.clear();
    if (batch_.capacity() > 16 * 1024) std::string().swap(batch_);
}

// Over TLS the bytes go through the session: read from the file, a chunk at a time. A chunk
// the socket did not take is read again, the same, for the write that retries it.
void Connection::send_file_over_tls() {
    int file = response_.file_body()->fd;
    std::uint64_t this_turn = 0;
    file_chunk_.resize(kFileChunk);
    while (file_offset_ < file_end_) {
        if (this_turn >= kFileBytesPerTurn) {
            return asio::post(socket_.get_executor(),
                              bound(&Connection::on_file_writable, error_code{}));
        }
        std::size_t count =
            static_cast<std::size_t>(std::min<std::uint64_t>(file_end_ - file_offset_, kFileChunk));
        ssize_t got = ::pread(file, file_chunk_.data(), count, static_cast<off_t>(file_offset_));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            log::error(describe_request(method_, target_), ": read: ",
                       got == 0 ? std::string("the file is shorter than it was")
                                : std::string(std::strerror(errno)));
            linger reset{1, 0};
            ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            return on_write(asio::error::broken_pipe, file_sent_);
        }
        error_code ec;
        std::size_t sent =
            socket_.write_now(asio::buffer(file_chunk_.data(), static_cast<std::size_t>(got)), ec);
        if (ec == asio::error::would_block) {
            note_write_progress();
            socket_.async_wait(Socket::wait_write, bound(&Connection::on_file_writable));
            return;
        }
        if (ec) return on_write(ec, file_sent_);  // the client left
        file_offset_ += sent;
        file_sent_ += sent;
        this_turn += sent;
    }
    std::string().swap(file_chunk_);
    disarm_timer();
    on_write({}, file_sent_);
}

void Connection::count_written(std::size_t bytes) {
    server_.totals().bytes_out += bytes;
    server_.count_response(client_, method_, target_, response_.message().result_int(), bytes,
                           std::chrono::steady_clock::now() - request_started_);
}

// Writes what out_ holds, then calls `done` with every byte written (`written` already).
// The write timeout is one of inactivity: each write that makes progress moves it, so a
// slow but steady reader gets the whole response, and only one that stops is let go.
void Connection::write_out(std::size_t written, WriteDone done) {
    out_written_ = written;
    write_done_ = done;
    note_write_progress();
    do_write_some();
}

// The write timeout runs again from now. The kernel's send buffer may hold megabytes that
// the client is still reading after the socket stopped taking more: how much it holds now
// tells, when the timeout comes, whether the client took any of it meanwhile.
void Connection::note_write_progress() {
    arm_timer(server_.limits().write_timeout);
    unsent_at_progress_ = unsent_bytes();
}

std::size_t Connection::unsent_bytes() {
    int queued = 0;
    if (::ioctl(socket_.native_handle(), SIOCOUTQ, &queued) != 0 || queued < 0) return 0;
    return static_cast<std::size_t>(queued);
}

// A write that has not progressed for the write timeout: the client is let go, unless it
// has been reading what the kernel holds for it.
void Connection::on_write_timeout() {
    std::size_t unsent = unsent_bytes();
    if (unsent < unsent_at_progress_) {
        unsent_at_progress_ = unsent;
        return arm_timer(server_.limits().write_timeout);
    }
    log::debug("a client took nothing for the write timeout: closing its connection");
    close();
}

void Connection::do_write_some() {
    socket_.async_write_some(out_, bound(&Connection::on_write_some));
}

void Connection::on_write_some(error_code ec, std::size_t bytes) {
    if (state_ == State::closed) return;
    out_written_ += bytes;
    while (bytes > 0 && !out_.empty()) {
        std::size_t taken = std::min(bytes, out_.front().size());
        out_.front() += taken;
        bytes -= taken;
        if (out_.front().size() == 0) out_.erase(out_.begin());
    }
    if (!ec && !out_.empty()) {
        note_write_progress();
        return do_write_some();
    }
    disarm_timer();
    (this->*write_done_)(ec, out_written_);
}

void Connection::on_write(error_code ec, std::size_t bytes) {
    if (state_ == State::closed) return;
    disarm_timer();
    // The batch went out with this response: its bytes were counted when it was made.
    std::size_t batched = std::exchange(batch_in_write_, 0);
    if (batched > 0) release_batch();
    count_written(bytes - std::min(bytes, batched));
    response_done();
    if (ec) return close();  // the client left (EPIPE, reset) or the write timed out
    if (!keep_alive_) return has_unread_input() ? do_linger() : close();
    read_next_request();
}

// The request is over: its body's share of the worker's budget, and a large response body,
// are freed now, not at the next request.
void Connection::response_done() {
    in_flight_.end();
    response_ = Response();
    release_body();
}

// --- streaming it ---------------------------------------------------------------------------

// The handler's head goes out now; the parts follow as the writers queue them, one chunk
// per write holding every part queued meanwhile, so a fast writer costs few system calls.
bool Connection::start_stream(std::uint64_t request_id, Response head,
                              std::shared_ptr<detail::StreamChannel> channel) {
    if (state_ != State::handling || request_id != request_id_) return false;
    if (ends_here()) keep_alive_ = false;
    response_ = std::move(head);
    response_.body().clear();
    unsigned status = response_.message().result_int();
    bool no_content = status < 200 || status == 204 || status == 304;
    bool chunked = request_version_ != 10;
    if (!chunked) keep_alive_ = false;  // the end of the connection ends the body
    // HEAD gets the framing GET would have had.
    if (!serialize_head(chunked && !no_content ? Framing::chunked : Framing::none)) {
        // Nothing was sent yet: the client can be told, and the stream's writers are.
        log::error(describe_request(method_, target_),
                   ": the handler's stream head has a header holding CR, LF or NUL, or a name "
                   "that is not a token; answering 500");
        keep_alive_ = false;
        finish_response(Response::error(500));
        return false;  // the caller closes the channel
    }

    pending_.reset();
    disarm_timer();  // the handler has answered: its timeout no longer applies
    state_ = State::streaming;
    stream_.start(std::move(channel), chunked, !head_request_ && !no_content);
    out_.assign({asio::buffer(head_)});
    write_out(0, &Connection::on_stream_written);
    return true;
}

void Connection::on_stream_kick(const std::shared_ptr<detail::StreamChannel>& channel) {
    if (state_ != State::streaming || channel != stream_.channel() || stream_.writing()) return;
    continue_stream();
}

void Connection::continue_stream() {
    switch (stream_.next(out_)) {
        case StreamWriter::Next::write:
            return write_out(0, &Connection::on_stream_written);
        case StreamWriter::Next::end:
            return end_stream();
        case StreamWriter::Next::cut_off:
            log::warning(
                "a streamed response was dropped before finish(): resetting its connection");
            return cut_off_stream();
        case StreamWriter::Next::wait:
            // The next write, finish() or drop kicks the connection again; a stream with an
            // idle timeout is cut off when none comes in time.
            if (stream_.idle_timeout().count() > 0) arm_timer(stream_.idle_timeout());
            return;
    }
}

// A reset, not an orderly close: to an HTTP/1.0 client (no chunks) an orderly close would
// look like the end of a complete body.
void Connection::cut_off_stream() {
    linger reset{1, 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close();
}

void Connection::on_stream_written(error_code ec, std::size_t bytes) {
    if (state_ != State::streaming) return;  // closed meanwhile
    server_.totals().bytes_out += bytes;
    bool complete = stream_.written(bytes);
    disarm_timer();
    if (ec) return close();  // the client left (EPIPE, reset) or stopped reading
    if (complete) return end_stream();
    stream_.give_back_room();
    continue_stream();
}

void Connection::count_stream_response() {
    server_.count_response(client_, method_, target_, response_.message().result_int(),
                           stream_.bytes(), std::chrono::steady_clock::now() - request_started_);
}

void Connection::end_stream() {
    count_stream_response();
    stream_.stop()->close();  // writes from now on report false
    response_done();
    if (!keep_alive_) return has_unread_input() ? do_linger() : close();
    read_next_request();
}

// --- closing -------------------------------------------------------------------------------

// A client that asked for the end sends nothing after its request (RFC 9112, 9.6): only
// what it sent with it can be unread. Otherwise the kernel is asked (FIONREAD).
bool Connection::has_unread_input() {
    if (input_left_unread_ || !input_.empty()) return true;
    if (client_closes_ && read_short_) return false;
    return socket_.available() > 0;
}

// Closes our side first and reads what the client still sends until it closes too, so
// that unread input never turns our close into a reset that could destroy the response.
void Connection::do_linger() {
    state_ = State::lingering;
    socket_.shutdown_send();
    arm_timer(server_.limits().linger_timeout);
    read_while_lingering();
}

// One read per turn of the loop (a client that sends fast holds up nobody), until the
// socket is empty; then a wait. A wait already outstanding (one from reading, whose edge
// may have been taken) ends in on_readable, which comes back here.
void Connection::read_while_lingering() {
    if (state_ != State::lingering) return;
    input_.clear();
    auto [space, room] = input_.prepare();
    error_code ec;
    socket_.read_now(space, room, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        drained_ = true;
        return wait_readable();
    }
    if (ec) return close();  // the client closed (or reset): the linger is over
    asio::post(socket_.get_executor(), bound(&Connection::read_while_lingering));
}

void Connection::drain() {
    if (handshaking_) return;  // under its handshake timeout; then as below
    if (socket_.is_tls() && server_.hands_off_connections()) {
        // A TLS session cannot go to another worker: the connection stays here until its
        // next request, which is answered with Connection: close, or its idle timeout. It
        // is not closed under its client now.
        stays_ = true;
        return;
    }
    if (server_.hands_off_connections() && !stays_) {
        // Nothing of a request parsed yet: it goes now. Otherwise after the response.
        if (state_ == State::reading && !head_done_ && goes_to_another_worker()) {
            return hand_off();
        }
        if (!stays_) return;
    }
    // A busy connection answers its current request with Connection: close; an idle one
    // gets a short grace in which a request already on its way is still answered.
    if (is_idle()) arm_read_deadline(ReadDeadline::idle);
}

void Connection::close() {
    if (state_ == State::closed) return;
    state_ = State::closed;
    if (pending_) pending_->abandon();
    pending_.reset();
    if (stream_.active()) {  // cut off: the client gone, or a write that timed out
        count_stream_response();
        auto channel = stream_.stop();
        channel->close();
        channel->pending->abandon();
    }
    cancel_handler();
    idle_entry_.unlink();
    in_flight_.end();
    release_body();
    deadline_.cancel();
    fork_guard::remove(socket_.native_handle());
    socket_.close();
    server_.remove(this);
}

// --- deadlines -----------------------------------------------------------------------------

void Connection::arm_read_deadline(ReadDeadline kind) {
    read_deadline_ = kind;
    const ServerLimits& limits = server_.limits();
    if (kind == ReadDeadline::request) return arm_timer(limits.header_timeout);
    // A TLS connection kept by a worker that hands the others off keeps its idle timeout.
    bool grace =
        ends_here() && server_.draining() && !(socket_.is_tls() && server_.hands_off_connections());
    arm_timer(grace ? limits.drain_idle_grace : limits.idle_timeout);
}

// One deadline at a time, for the current state (see lazy_deadline.hpp).
void Connection::arm_timer(std::chrono::milliseconds after) {
    if (deadline_.set(after)) wait_for_deadline();
}

void Connection::disarm_timer() {
    deadline_.clear();
}

void Connection::wait_for_deadline() {
    deadline_.wait(bound(&Connection::on_timer));
}

void Connection::on_timer(error_code ec) {
    auto outcome = deadline_.on_wait_done(ec);
    if (state_ == State::closed) return;
    if (outcome == LazyDeadline::Outcome::wait_again) return wait_for_deadline();
    if (outcome == LazyDeadline::Outcome::expired) on_timeout();
}

void Connection::on_timeout() {
    switch (state_) {
        case State::reading:
            if (handshaking_) {
                ++server_.totals().tls_handshake_failures;
                log::debug("a TLS handshake did not end within the handshake timeout");
                return close();
            }
            // Idle: the keep-alive connection is let go. Otherwise the head did not arrive
            // within the header timeout, or the body stopped arriving: 408. A wait for input
            // still outstanding finds the connection no longer reading.
            if (phase_ == ReadPhase::idle) return close();
            log::debug(phase_ == ReadPhase::head ? "the header timeout passed: 408"
                                                 : "the body stopped arriving: 408");
            return send_error(408);
        case State::writing:
            return on_write_timeout();
        case State::lingering:
            return close();
        case State::streaming:
            // A write the client does not take, or (a stream with an idle timeout) no part
            // from the handler in time.
            if (!stream_.writing()) {
                log::warning("a streamed response wrote nothing for ",
                             stream_.idle_timeout().count(), " ms: cutting it off");
                return cut_off_stream();
            }
            return on_write_timeout();
        case State::handling:
            return on_handler_timeout();
        case State::closed:
            return;
    }
}

}  // namespace prefork

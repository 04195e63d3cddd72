#include "server.hpp"

#include "tls_context.hpp"

#include "connection.hpp"
#include "fork_guard.hpp"

#include <prefork/common/fd_passing.hpp>
#include <prefork/common/listen_address.hpp>

#include <prefork/common/log.hpp>
#include <prefork/common/log_output.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace prefork {
namespace {

// "127.0.0.1:51234", "[::1]:51234" or "unix" (for the access log).
std::string peer_address(int socket, int family) {
    if (family == AF_UNIX) return "unix";
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getpeername(socket, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "-";
    char host[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        return bracketed(host) + ":" + std::to_string(ntohs(in6->sin6_port));
    }
    auto* in = reinterpret_cast<sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
}

// AF_INET, AF_INET6, AF_UNIX, or 0 when it cannot be told.
int socket_family(int socket) {
    int family = 0;
    socklen_t length = sizeof family;
    if (::getsockopt(socket, SOL_SOCKET, SO_DOMAIN, &family, &length) != 0) return 0;
    return family;
}

}  // namespace

namespace {

// A positive number from the environment, or nullopt (with a warning when it is malformed).
std::optional<double> positive_number(const char* name) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') return std::nullopt;
    char* end = nullptr;
    double value = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(value > 0)) {
        log::warning(name, "=", text, " is not a positive number; ignored");
        return std::nullopt;
    }
    return value;
}

void seconds_from(const char* name, std::chrono::milliseconds& setting) {
    if (auto seconds = positive_number(name)) {
        setting = std::chrono::milliseconds(static_cast<long long>(*seconds * 1000));
    }
}

void seconds_from(const char* name, std::chrono::seconds& setting) {
    if (auto seconds = positive_number(name)) {
        setting = std::chrono::seconds(std::max(1LL, static_cast<long long>(*seconds)));
    }
}

template <class Count>
void count_from(const char* name, Count& setting) {
    if (auto count = positive_number(name)) setting = static_cast<Count>(*count);
}

}  // namespace

ServerLimits limits_from_environment() {
    ServerLimits limits;
    seconds_from("PREFORK_HEADER_TIMEOUT", limits.header_timeout);
    seconds_from("PREFORK_BODY_TIMEOUT", limits.body_timeout);
    seconds_from("PREFORK_TCP_KEEPALIVE", limits.tcp_keepalive);
    seconds_from("PREFORK_IDLE_TIMEOUT", limits.idle_timeout);
    seconds_from("PREFORK_WRITE_TIMEOUT", limits.write_timeout);
    seconds_from("PREFORK_HANDLER_TIMEOUT", limits.handler_timeout);
    count_from("PREFORK_HEADER_LIMIT", limits.header_limit);
    count_from("PREFORK_BODY_LIMIT", limits.body_limit);
    count_from("PREFORK_BODY_BUFFER_LIMIT", limits.body_buffer_limit);
    count_from("PREFORK_MAX_CONNECTIONS", limits.max_connections);
    seconds_from("PREFORK_TLS_HANDSHAKE_TIMEOUT", limits.handshake_timeout);
    return limits;
}

Server::Server(boost::asio::io_context& io, const Router& router, ServerLimits limits,
               std::string access_log)
    : io_(io),
      router_(router),
      limits_(limits),
      parser_limits_{.header_limit = limits.header_limit,
                     .body_limit = limits.body_limit,
                     .trailer_limit = limits.header_limit},
      access_log_(std::move(access_log)),
      drain_deadline_(io) {}

Server::~Server() {
    for (auto& acceptor : acceptors_) fork_guard::remove(acceptor->native_handle());
    on_stopped_ = nullptr;
    close_all();
}

void Server::close_all() {
    auto remaining = std::move(connections_);
    connections_.clear();
    for (auto& [raw, connection] : remaining) connection->close();
}

// TCP options set once on the listening socket, which every connection it accepts
// inherits (no system call per connection): responses go out whole (Nagle would only delay
// them), and a client that vanished without a word is found by keepalive probes.
void Server::listen(UniqueFd listener, std::string name) {
    bool tls = serves_tls(name);
    if (tls && !tls_) {
        log::error("listener ", name, " serves TLS, but no certificate came with it: closed");
        return;
    }
    fork_guard::add(listener.get());
    int domain = 0;
    socklen_t length = sizeof domain;
    if (::getsockopt(listener.get(), SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 &&
        (domain == AF_INET || domain == AF_INET6)) {
        int one = 1;
        int idle = static_cast<int>(limits_.tcp_keepalive.count()), interval = 10, probes = 6;
        ::setsockopt(listener.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(listener.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        ::setsockopt(listener.get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        ::setsockopt(listener.get(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        ::setsockopt(listener.get(), IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
    }
    // Every connection it accepts has its received data stamped by the kernel: where a
    // request's queue time starts (count_queue_time).
    int on = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    auto acceptor = std::make_unique<Acceptor>(
        io_, std::move(listener), std::move(name),
        [this, tls](UniqueFd socket, int family) { on_accepted(std::move(socket), family, tls); });
    acceptor->start();
    acceptors_.push_back(std::move(acceptor));
}

bool Server::set_tls_credentials(const control::TlsCredentials& credentials) {
    try {
        tls_ = std::make_unique<TlsContext>(credentials);
        return true;
    } catch (const std::exception& error) {
        log::error("TLS: ", error.what());
        return false;
    }
}

void Server::set_ticket_keys(const control::TicketKeys& keys) {
    if (tls_) tls_->set_ticket_keys(keys.keys, std::chrono::seconds(keys.lifetime_s));
}

void Server::count_handshake(bool resumed) {
    ++counters_.tls_handshakes;
    if (resumed) ++counters_.tls_sessions_resumed;
}

void Server::on_accepted(UniqueFd socket, int family, bool tls) {
    ++counters_.connections_accepted;
    make_room();
    auto connection = take_connection(std::move(socket), family, true, tls);
    if (!connection) return;
    pause_if_full();
    connection->start();
}

// A connection of ours from now on: one Connection owns the socket. `accepted` here, it has no
// other descriptor (one handed over may still have one in the process that sent it).
std::shared_ptr<Connection> Server::take_connection(UniqueFd socket, int family, bool accepted,
                                                    bool tls) {
    SSL* session = nullptr;
    if (tls && (!tls_ || (session = tls_->new_session(socket.get())) == nullptr)) return nullptr;
    fork_guard::add(socket.get());
    int protocol = family == AF_INET || family == AF_INET6 ? IPPROTO_TCP : 0;
    Connection::Socket stream(io_, boost::asio::generic::stream_protocol(family, protocol),
                              socket.release(), accepted);
    if (session != nullptr) stream.start_tls(session);
    std::string client;
    if (access_log_.enabled()) client = peer_address(stream.native_handle(), family);
    auto connection = std::make_shared<Connection>(std::move(stream), *this, std::move(client));
    connections_.emplace(connection.get(), connection);
    return connection;
}

bool Server::fits_a_hand_off(std::size_t bytes) {
    // Base64 makes 4 of 3, and the JSON around it takes a few dozen.
    return bytes / 3 * 4 + 256 < kMaxMessageSize;
}

void Server::stop_handing_off() {
    if (!hand_off_) return;
    hand_off_ = nullptr;
    if (!draining_) return;
    auto current = connections_;
    for (auto& [raw, connection] : current) connection->drain();  // as in a stop
}

bool Server::hand_off(UniqueFd socket, std::string bytes) {
    if (!fits_a_hand_off(bytes.size())) return false;
    HandOff& to = hands_off_connections() ? hand_off_ : shed_to_;
    if (!to || (draining_ && !hands_off_connections())) return false;
    ++counters_.connections_handed_off;
    to(std::move(socket), std::move(bytes), false);  // TLS connections are never handed off
    return true;
}

void Server::shed(std::size_t count) {
    shed_left_ = draining_ || !shed_to_ ? 0 : count;
    while (shed_left_ > 0 && !idle_.empty()) {
        if (!idle_.front().connection->shed_now()) break;
    }
}

bool Server::takes_one_to_shed() {
    if (shed_left_ == 0 || draining_ || !shed_to_) return false;
    --shed_left_;
    return true;
}

void Server::adopt(UniqueFd socket, std::string bytes, bool tls) {
    if (hands_off_connections() && fits_a_hand_off(bytes.size())) {
        hand_off_(std::move(socket), std::move(bytes), tls);  // draining meanwhile: passed on
        return;
    }
    int family = socket_family(socket.get());
    const char* refused = nullptr;
    if (draining_) {
        refused = "this worker is stopping";
    } else if (connections_.size() >= limits_.max_connections) {
        refused = "at the connection limit (PREFORK_MAX_CONNECTIONS)";
    } else if (bytes.size() > limits_.header_limit + Connection::kInputMargin) {
        refused = "its request so far is larger than this worker's header limit";
    } else if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
        refused = "it is not a TCP or Unix stream socket";
    }
    if (refused) {
        ++counters_.handoff_fallbacks;
        log::warning("a connection handed off by another worker is closed: ", refused);
        return;  // `socket` closes it
    }
    if (tls) {
        // A new TLS client shed by a busy worker, before its handshake: served from it on.
        if (auto connection = take_adopted(std::move(socket), family, true)) connection->start();
        return;
    }
    take_adopted(std::move(socket), family, false)->start(bytes, true);
}

void Server::adopt_new_client(UniqueFd socket, bool tls) {
    if (draining_) {
        if (hands_off_connections()) return hand_off_(std::move(socket), "", tls);
        ++counters_.handoff_fallbacks;
        return;  // stopping with nobody to take it: closed
    }
    make_room();
    if (connections_.size() >= limits_.max_connections) {
        // Busy to the limit (the master hears of it): back to the master, for another worker.
        if (shed_to_) {
            ++counters_.connections_handed_off;
            return shed_to_(std::move(socket), "", tls);
        }
        ++counters_.handoff_fallbacks;
        return;
    }
    int family = socket_family(socket.get());
    if (auto connection = take_adopted(std::move(socket), family, tls)) connection->start();
}

// A connection from another worker or the master, ours from now on, counted.
std::shared_ptr<Connection> Server::take_adopted(UniqueFd socket, int family, bool tls) {
    auto connection = take_connection(std::move(socket), family, false, tls);
    if (!connection) return nullptr;
    ++counters_.connections_adopted;
    pause_if_full();
    return connection;
}

// At the connection limit, the keep-alive connection idle the longest is closed to admit
// the new client, so idle sockets cannot lock new clients out. A connection that has not
// sent its first request yet is not taken for an idle one: it is bounded by the idle
// timeout, and closing it would fail a client that just connected.
void Server::make_room() {
    while (connections_.size() >= limits_.max_connections && !idle_.empty()) {
        log::debug("at ", limits_.max_connections, " connections: closing the longest idle");
        idle_.front().connection->close();  // unlinks it
    }
}

// Every connection busy at the limit: the other workers take the new ones meanwhile (one
// accept queue for all), until one of ours closes or goes idle.
void Server::pause_if_full() {
    if (connections_.size() < limits_.max_connections || !idle_.empty() || accepting_paused_) {
        return;
    }
    log::debug("at ", limits_.max_connections, " busy connections: not accepting");
    pause_accepting();
}

void Server::pause_accepting() {
    accepting_paused_ = true;
    for (auto& acceptor : acceptors_) acceptor->pause();
    if (tell_accepting_) tell_accepting_(false);
}

void Server::resume_accepting() {
    accepting_paused_ = false;
    for (auto& acceptor : acceptors_) acceptor->resume();
    if (tell_accepting_) tell_accepting_(true);
}

void Server::mark_idle(Connection& connection) {
    if (!connection.idle_entry().is_linked()) idle_.push_back(connection.idle_entry());
    if (accepting_paused_ && !draining_) resume_accepting();  // one to close for the next client
}

void Server::mark_busy(Connection& connection) {
    if (!connection.idle_entry().is_linked()) return;
    connection.idle_entry().unlink();
    pause_if_full();
}

bool Server::reserve_body(std::uint64_t bytes) {
    if (body_bytes_ + bytes > limits_.body_buffer_limit) {
        log::warning("request bodies would hold more than ", limits_.body_buffer_limit,
                     " bytes (PREFORK_BODY_BUFFER_LIMIT): answering 503");
        return false;
    }
    body_bytes_ += bytes;
    return true;
}

void Server::release_body(std::uint64_t bytes) {
    body_bytes_ -= std::min(body_bytes_, bytes);
}

void Server::set_request_limit(std::uint64_t limit, std::function<void()> report) {
    request_limit_ = limit;
    report_requests_ = std::move(report);
}

void Server::count_request() {
    ++counters_.requests;
    if ((counters_.requests == 1 || counters_.requests == request_limit_) && report_requests_) {
        report_requests_();
    }
}

bool Server::reads_new_client_at_once() {
    return read_at_once_score_ >= 0 || ++new_clients_waited_for_ % 8 == 0;
}

void Server::count_read_at_once(bool found_input) {
    read_at_once_score_ = std::clamp(read_at_once_score_ + (found_input ? 1 : -1), -8, 8);
}

void Server::count_queue_time(std::chrono::system_clock::duration waited) {
    double seconds = std::max(0.0, std::chrono::duration<double>(waited).count());
    const auto& bounds = control::kDurationBuckets;
    auto bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
    ++counters_.queue_times[static_cast<std::size_t>(bucket)];
    counters_.queue_seconds_sum += seconds;
}

void Server::count_response(std::string_view client, std::string_view method,
                            std::string_view target, unsigned status, std::uint64_t bytes,
                            std::chrono::steady_clock::duration duration) {
    unsigned status_class = std::clamp(status / 100, 1u, 5u);
    ++counters_.responses[status_class - 1];
    double seconds = std::chrono::duration<double>(duration).count();
    const auto& bounds = control::kDurationBuckets;
    auto bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
    ++counters_.durations[static_cast<std::size_t>(bucket)];
    counters_.duration_seconds_sum += seconds;
    if (access_log_.enabled()) access_log_.write(client, method, target, status, bytes, duration);
}

control::WorkerCounters Server::counters() const {
    control::WorkerCounters now = counters_;
    now.active_connections = connections_.size();
    now.log_lines_dropped = log::dropped_line_count();
    return now;
}

void Server::remove(Connection* connection) {
    connections_.erase(connection);
    if (accepting_paused_ && connections_.size() < limits_.max_connections && !draining_) {
        resume_accepting();
    }
    stop_if_drained();
}

void Server::drain(std::chrono::milliseconds timeout, std::function<void()> on_stopped) {
    if (draining_) return;
    draining_ = true;
    on_stopped_ = std::move(on_stopped);
    // Closed, but kept until the server goes: a completion may still be queued for them.
    for (auto& acceptor : acceptors_) {
        fork_guard::remove(acceptor->native_handle());
        acceptor->close();
    }
    log::info("draining: listeners closed, ", connections_.size(), " connection(s) open");

    drain_deadline_.expires_after(timeout);
    drain_deadline_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        log::warning("graceful timeout: closing ", connections_.size(), " connection(s)");
        auto remaining = connections_;  // close() removes from connections_
        for (auto& [raw, connection] : remaining) connection->close();
        connections_.clear();
        stop_if_drained();
    });
    // Copy: a connection that closes at once removes itself while we iterate.
    auto current = connections_;
    for (auto& [raw, connection] : current) connection->drain();
    stop_if_drained();
}

void Server::stop_if_drained() {
    if (!draining_ || !connections_.empty() || !on_stopped_) return;
    drain_deadline_.cancel();
    auto on_stopped = std::exchange(on_stopped_, nullptr);
    on_stopped();
}

}  // namespace prefork

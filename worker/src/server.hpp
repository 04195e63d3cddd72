#pragma once

#include <prefork/common/acceptor.hpp>
#include "access_log.hpp"
#include "idle_entry.hpp"
#include "request_parser.hpp"

#include <prefork/common/control_protocol.hpp>

#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace prefork {

class Connection;
class Router;
class TlsContext;

// Limits and timeouts of every connection, and the status each produces.
struct ServerLimits {
    std::size_t header_limit = 16 * 1024;        // request line + fields: 431 (414 the line)
    std::uint64_t body_limit = 8 * 1024 * 1024;  // larger bodies: 413
    std::uint64_t body_buffer_limit = 64 * 1024 * 1024;  // bodies held by the worker: 503
    std::chrono::milliseconds header_timeout{10'000};    // first byte to end of head: 408
    std::chrono::milliseconds body_timeout{10'000};      // no byte of the body for this: 408
    std::chrono::milliseconds idle_timeout{15'000};      // keep-alive with no request: close
    std::chrono::milliseconds write_timeout{30'000};     // no progress writing for this: close
    std::chrono::milliseconds handler_timeout{60'000};   // an asynchronous handler's answer: 503
    std::chrono::seconds tcp_keepalive{60};  // idle TCP before keepalive probes (10 s apart, 6)
    std::size_t max_connections = 10'000;    // beyond: close an idle one, else stop accepting
    std::chrono::milliseconds drain_idle_grace{500};      // idle keep-alive when draining: close
    std::chrono::milliseconds linger_timeout{2'000};      // reading after our FIN, at most
    std::chrono::milliseconds handshake_timeout{10'000};  // TLS: connected to handshake done
};

// The defaults, with what the worker's environment changes: PREFORK_HEADER_TIMEOUT,
// PREFORK_BODY_TIMEOUT, PREFORK_IDLE_TIMEOUT, PREFORK_WRITE_TIMEOUT,
// PREFORK_HANDLER_TIMEOUT, PREFORK_TCP_KEEPALIVE (seconds), PREFORK_HEADER_LIMIT,
// PREFORK_BODY_LIMIT, PREFORK_BODY_BUFFER_LIMIT (bytes), PREFORK_MAX_CONNECTIONS,
// PREFORK_TLS_HANDSHAKE_TIMEOUT (seconds).
ServerLimits limits_from_environment();

// The HTTP side of a worker: its acceptors and its connections, on one event loop.
class Server {
  public:
    Server(boost::asio::io_context& io, const Router& router, ServerLimits limits = {},
           std::string access_log = {});
    ~Server();

    // Starts accepting on a listening socket. One whose name says tls: serves TLS with the
    // credentials given before (a listener without them is closed, with one line).
    void listen(UniqueFd listener, std::string name);
    // The certificate, key and ciphers of the TLS listeners; false (and one line) when
    // OpenSSL refuses them.
    bool set_tls_credentials(const control::TlsCredentials& credentials);
    void set_ticket_keys(const control::TicketKeys& keys);

    // Stops accepting at once (closes this worker's listening sockets), lets the requests
    // in flight finish, and calls `on_stopped` once no connection is left, or when
    // `timeout` has passed (then after closing what remains). Again while draining: no-op.
    void drain(std::chrono::milliseconds timeout, std::function<void()> on_stopped);
    bool draining() const { return draining_; }

    // Once draining, a connection between requests is not closed but given to `hand_off`
    // (its socket, and the bytes of its next request read so far) for another worker; a
    // busy one stays keep-alive and goes when its response is written. Set before drain().
    // Told when the worker stops taking new connections (false: every connection it has is
    // busy, at its connection limit) and when it takes them again.
    void on_accepting_changed(std::function<void(bool accepting)> tell) {
        tell_accepting_ = std::move(tell);
    }
    // tls: a new client of a TLS listener, before its handshake (no bytes).
    using HandOff = std::function<void(UniqueFd socket, std::string bytes, bool tls)>;
    // Where connections shed for other workers go (shed()); set once the worker serves.
    void shed_connections_to(HandOff to) { shed_to_ = std::move(to); }
    // Hands `count` keep-alive connections to shed_connections_to: idle ones now, the
    // longest idle first, busy ones when they are next between requests. A new count
    // replaces the last (0: none any more).
    void shed(std::size_t count);
    // A connection between requests asks: goes it to another worker? (counts it if so)
    bool takes_one_to_shed();
    void hand_off_connections(HandOff hand_off) { hand_off_ = std::move(hand_off); }
    // Nobody will take them any more (the master is gone, or prefork stops): the
    // connections left end here, as in a stop.
    void stop_handing_off();
    // Whether `bytes` of a connection's input fit a handoff message.
    static bool fits_a_hand_off(std::size_t bytes);
    // Draining, and connections end here rather than go to another worker: each response
    // says Connection: close.
    bool closes_connections() const { return draining_ && !hand_off_; }
    bool hands_off_connections() const { return draining_ && hand_off_; }
    // A connection gives itself up (see hand_off_connections); false when it cannot.
    bool hand_off(UniqueFd socket, std::string bytes);
    // Serves a connection another worker handed off, as if accepted, its first `bytes`
    // already read. At the connection limit, while draining without handing off, or when
    // the bytes do not fit a connection's buffer, it is closed (and counted). `tls`: a new
    // client of a TLS listener another worker had no room for, its handshake still to come.
    void adopt(UniqueFd socket, std::string bytes, bool tls);
    // A new client the master took from the queue of a slot nobody accepted on: served as
    // if accepted here (over TLS if `tls`: it came to a TLS listener); at the connection
    // limit with nothing idle to close, handed back.
    void adopt_new_client(UniqueFd socket, bool tls);

    // Calls `report` when the first request arrives (the master then knows this worker
    // has been serving, should it die) and once the request count reaches `limit` (0:
    // never).
    void set_request_limit(std::uint64_t limit, std::function<void()> report);
    // Whether a new client's first bytes are read at once, before any wait: they have mostly
    // arrived with the connection when the worker is busy, and mostly not when it was idle
    // (a read then finds nothing, one system call lost). Decided by how the recent reads at
    // once went; every 8th new client is read at once regardless, to keep finding out.
    bool reads_new_client_at_once();
    void count_read_at_once(bool found_input);
    // Counts one TLS handshake completed (`resumed`: by a session ticket).
    void count_handshake(bool resumed);
    // Counts one request received.
    void count_request();
    // Counts how long a request waited: from the arrival of its first byte to its head
    // being parsed by this worker (its handler starts then, or once its body is in).
    void count_queue_time(std::chrono::system_clock::duration waited);
    // Counts one response written (and logs it when the access log is on).
    void count_response(std::string_view client, std::string_view method, std::string_view target,
                        unsigned status, std::uint64_t bytes,
                        std::chrono::steady_clock::duration duration);

    // The totals since the worker started, and the connections open now.
    control::WorkerCounters counters() const;
    control::WorkerCounters& totals() { return counters_; }
    std::size_t active_connections() const { return connections_.size(); }
    AccessLog& access_log() { return access_log_; }
    const Router& router() const { return router_; }
    const ServerLimits& limits() const { return limits_; }
    const ParserLimits& parser_limits() const { return parser_limits_; }

    // A connection waits for its next request (it may be closed to admit a new client at
    // the connection limit), or has received some of it.
    void mark_idle(Connection& connection);
    void mark_busy(Connection& connection);
    // Takes `bytes` of the worker's body budget (PREFORK_BODY_BUFFER_LIMIT); false when
    // they do not fit. release_body gives them back.
    bool reserve_body(std::uint64_t bytes);
    void release_body(std::uint64_t bytes);
    boost::asio::io_context& io() { return io_; }

    // Closes every connection now (the loop has stopped).
    void close_all();

    // Called by a connection when it has closed its socket.
    void remove(Connection* connection);

  private:
    void on_accepted(UniqueFd socket, int family, bool tls);
    std::shared_ptr<Connection> take_connection(UniqueFd socket, int family, bool accepted,
                                                bool tls);
    std::shared_ptr<Connection> take_adopted(UniqueFd socket, int family, bool tls);
    void make_room();
    void pause_if_full();
    void stop_if_drained();

    boost::asio::io_context& io_;
    const Router& router_;
    ServerLimits limits_;
    ParserLimits parser_limits_;
    control::WorkerCounters counters_;
    AccessLog access_log_;
    std::vector<std::unique_ptr<Acceptor>> acceptors_;
    std::unique_ptr<TlsContext> tls_;
    std::unordered_map<Connection*, std::shared_ptr<Connection>> connections_;
    // Idle keep-alive connections, the longest idle first.
    boost::intrusive::list<IdleEntry, boost::intrusive::constant_time_size<false>> idle_;
    std::uint64_t body_bytes_ = 0;  // request bodies held now
    bool draining_ = false;
    bool accepting_paused_ = false;
    std::function<void(bool)> tell_accepting_;
    HandOff shed_to_;
    std::size_t shed_left_ = 0;
    void pause_accepting();
    void resume_accepting();
    boost::asio::steady_timer drain_deadline_;
    std::function<void()> on_stopped_;
    std::uint64_t request_limit_ = 0;
    int read_at_once_score_ = 0;  // recent reads at once, -8..8: finding input minus not
    unsigned new_clients_waited_for_ = 0;
    std::function<void()> report_requests_;
    HandOff hand_off_;
};

}  // namespace prefork

#pragma once

// The messages that master and worker exchange over the control socket: one JSON object
// per SOCK_SEQPACKET datagram, descriptors attached with SCM_RIGHTS. See docs/protocol.md.

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace prefork::control {

inline constexpr int kProtocolVersion = 1;
// The descriptor number of the control socket in a worker.
inline constexpr int kWorkerControlFd = 3;
inline constexpr const char* kControlFdEnv = "PREFORK_CONTROL_FD";

// master -> worker: the listening sockets, one descriptor per entry, in order.
// graceful_timeout_ms is how long the worker may finish its requests should the master go
// away without a word; after max_requests requests (0: never) the worker sends a heartbeat
// at once, so the master can replace it.
struct Listeners {
    std::vector<std::string> names;
    int generation = 0;
    std::int64_t graceful_timeout_ms = 30'000;
    std::uint64_t max_requests = 0;
};

// master -> worker: stop accepting, finish in-flight requests within timeout_ms, exit.
// hand_off: a worker of the current generation takes the keep-alive connections instead of
// their being closed (HandOff); false when there is nobody to take them (a stop).
struct Drain {
    std::int64_t timeout_ms = 0;
    bool hand_off = false;
};

// worker -> master, with one descriptor: a client connection between requests, for
// another worker to serve; `bytes` are what the worker had read of its next request(s).
// tls: a new client of a TLS listener, before its handshake (no bytes).
struct HandOff {
    std::string bytes;
    bool tls = false;
};

// master -> worker, with one descriptor: a client connection to serve as if accepted,
// whose first `bytes` were read by the worker that handed it off.
// fresh: a new client the master took from the queue of a slot nobody accepted on (no
// bytes; served as if this worker had accepted it).
// tls: a new client of a TLS listener, before its handshake (no bytes): served over TLS.
struct Adopt {
    std::string bytes;
    bool fresh = false;
    bool tls = false;
};

// worker -> master: the worker accepts on every listener it was given.
struct Ready {
    std::int64_t pid = 0;
    // The address of its in_flight::Table (requests_in_flight.hpp), for the master to read
    // when the worker hangs; 0: none.
    std::uint64_t requests_in_flight = 0;
};

// The upper bounds, in seconds, of the request duration histogram's buckets (a last
// bucket, +Inf, follows them).
inline constexpr std::array<double, 13> kDurationBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// A worker's totals since it started (active_connections: now).
struct WorkerCounters {
    std::uint64_t requests = 0;
    std::uint64_t active_connections = 0;
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::array<std::uint64_t, 5> responses{};  // by status class: 1xx, 2xx, 3xx, 4xx, 5xx
    // Requests by duration: [i] counts those within kDurationBuckets[i] and above the
    // bucket before; the last counts the rest.
    std::array<std::uint64_t, kDurationBuckets.size() + 1> durations{};
    double duration_seconds_sum = 0;
    std::uint64_t log_lines_dropped = 0;       // stderr was not taking them
    std::uint64_t connections_handed_off = 0;  // sent to the master while draining
    std::uint64_t connections_adopted = 0;     // received from the master, and served
    std::uint64_t handoff_fallbacks = 0;       // could not be handed off or adopted: closed
    std::uint64_t connections_accepted = 0;    // from the listeners (not adopted ones)
    // Requests by queue time (the arrival of their first byte to the start of their
    // handling), in the buckets of kDurationBuckets.
    std::array<std::uint64_t, kDurationBuckets.size() + 1> queue_times{};
    double queue_seconds_sum = 0;
    std::uint64_t tls_handshakes = 0;          // completed
    std::uint64_t tls_sessions_resumed = 0;    // of those, by a session ticket
    std::uint64_t tls_handshake_failures = 0;  // a client that failed it, or left during it

    // Adds another worker's totals (the current connections too).
    void add(const WorkerCounters& other);
};

// worker -> master, every second from the event loop: proof of life and counters.
struct Heartbeat : WorkerCounters {};

// worker -> master: the worker closed its listeners and finishes what is in flight.
struct Draining {};

// worker -> master: the worker stopped taking new connections (accepting = false: all of its
// connections are busy, at its connection limit), or takes them again. With per-slot queues
// the master sends new connections to the other slots meanwhile, and passes on what waits
// in this one's queue.
struct Accepting {
    bool accepting = true;
};

// master -> worker: hand `connections` keep-alive connections to the master for the
// workers with fewer (HandOff, as in a drain): idle ones now, busy ones after their current
// response. What is not done by the worker's next heartbeat is forgotten.
struct Shed {
    std::uint64_t connections = 0;
};

// master -> worker: reopen the log files (the access log), after USR1.
struct ReopenLogs {};

// master -> worker: send heartbeats this often from now on (the master watches traffic
// closely while it waits for it to stop: --shutdown-delay auto).
struct HeartbeatInterval {
    std::int64_t interval_ms = 1000;
};

// master -> worker, before Listeners when a listener serves TLS: the certificate chain and
// its private key (PEM), read and checked by the master, and the TLS 1.2 cipher list. The
// worker never opens the files: no key file is ever open in a process a handler starts.
struct TlsCredentials {
    std::string certificate_chain;
    std::string private_key;
    std::string ciphers;
};

// master -> worker: the session-ticket keys, the newest first (it encrypts new tickets; the
// others still decrypt). Each is 80 bytes: a 16-byte name, a 32-byte HMAC key and a 32-byte
// AES key. Sent before Listeners and again at each rotation. lifetime_s: how long a client
// may keep a ticket (the oldest key is rotated out no sooner).
struct TicketKeys {
    std::vector<std::string> keys;
    std::int64_t lifetime_s = 0;
};

using Message = std::variant<Listeners, Drain, Ready, Heartbeat, Draining, ReopenLogs, HandOff,
                             Adopt, HeartbeatInterval, Accepting, Shed, TlsCredentials, TicketKeys>;

class ProtocolError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

std::string encode(const Message& message);

// Throws ProtocolError for anything that is not one well-formed message.
Message decode(std::string_view datagram);

}  // namespace prefork::control

#pragma once

#include <prefork/common/control_protocol.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace prefork::master {

// What the admin endpoint shows: a snapshot of the master and its workers, rendered as
// JSON (/status.json, preforkctl), Prometheus text (/metrics) and HTML (/status).
struct StatusReport {
    struct Worker {
        long pid = 0;
        int generation = 0;
        int slot = 0;
        std::string state;  // starting, ready, draining, stopping
        bool retiring = false;
        double uptime_seconds = 0;
        double heartbeat_age_seconds = 0;
        std::uint64_t rss_bytes = 0;
        control::WorkerCounters counters;
    };
    // What the workers of one slot have done, those that exited included: how evenly the
    // listeners' connections spread.
    struct Slot {
        std::uint64_t connections_accepted = 0;
        std::uint64_t requests = 0;
    };
    // A TLS listener and the certificate it serves (the current configuration's).
    struct TlsListener {
        std::string listener;  // tls:HOST:PORT
        std::string subject;
        std::string serial;
        std::int64_t not_after = 0;     // seconds since the epoch
        double expires_in_seconds = 0;  // negative once expired
    };
    struct Event {
        std::string time;  // UTC, as in the log
        std::string text;
    };

    std::string version;
    std::string binary_path;             // what an upgrade (USR2) runs
    std::uint64_t upgrades = 0;          // in place, since prefork started
    std::uint64_t upgrade_failures = 0;  // refused: the running master stayed
    std::string last_upgrade;            // UTC, as in the log; empty: never
    std::string upgraded_from;           // the version before the last upgrade
    long master_pid = 0;
    std::string phase;   // running, stopping
    bool ready = false;  // what /readyz says
    int target_workers = 0;
    int generation = 0;
    double uptime_seconds = 0;
    std::vector<Worker> workers;
    // Every request ever served, also by workers that have exited: never goes backwards.
    control::WorkerCounters totals;
    std::map<int, Slot> slots;
    std::uint64_t worker_starts = 0;
    std::map<std::string, std::uint64_t> worker_exits;  // by cause
    std::uint64_t reloads = 0;
    std::uint64_t reload_failures = 0;
    std::uint64_t log_lines_dropped = 0;  // by the master (the workers' are in the totals)
    // "per-slot" (--reuseport on) or "shared": how the workers take the TCP connections.
    std::string listen_queues = "shared";
    // Connections the master took from the queue of a slot no worker accepted on, and
    // passed to a worker that did.
    std::uint64_t connections_rescued = 0;
    std::vector<TlsListener> tls;
    std::vector<Event> events;  // the most recent last
};

// The causes a worker exit is counted under.
// signal: a worker told to stop by someone else than the master (kill -TERM to it).
// memory: above --worker-memory-limit (replaced), or above twice it (killed).
// upgrade: replaced by the workers of an upgraded master.
inline const std::vector<std::string> kExitCauses = {"crash", "hang", "memory", "recycle", "reload",
                                                     "scale", "stop", "signal", "upgrade"};

std::string to_json(const StatusReport& report);
std::string to_prometheus(const StatusReport& report);
std::string to_html(const StatusReport& report);

}  // namespace prefork::master

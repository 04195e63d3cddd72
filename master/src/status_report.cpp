#include "status_report.hpp"

#include <boost/json.hpp>

#include <cstdio>
#include <sstream>

namespace prefork::master {
namespace json = boost::json;

namespace {

json::object counters_json(const control::WorkerCounters& c) {
    json::object by_class;
    for (std::size_t i = 0; i < c.responses.size(); ++i) {
        by_class[std::to_string(i + 1) + "xx"] = c.responses[i];
    }
    return {{"requests", c.requests},
            {"active_connections", c.active_connections},
            {"bytes_in", c.bytes_in},
            {"bytes_out", c.bytes_out},
            {"responses", std::move(by_class)},
            {"tls_handshakes", c.tls_handshakes},
            {"tls_sessions_resumed", c.tls_sessions_resumed},
            {"tls_handshake_failures", c.tls_handshake_failures}};
}

std::string number(double value) {
    std::ostringstream out;
    out.precision(12);
    out << value;
    return out.str();
}

// A label value: backslash, quote and newline escaped (Prometheus' text format).
std::string label(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

}  // namespace

std::string to_json(const StatusReport& r) {
    json::array workers;
    for (const auto& w : r.workers) {
        json::object row = counters_json(w.counters);
        row["pid"] = w.pid;
        row["generation"] = w.generation;
        row["slot"] = w.slot;
        row["state"] = w.state;
        row["retiring"] = w.retiring;
        row["uptime_seconds"] = w.uptime_seconds;
        row["heartbeat_age_seconds"] = w.heartbeat_age_seconds;
        row["rss_bytes"] = w.rss_bytes;
        workers.push_back(std::move(row));
    }
    json::array slots;
    for (const auto& [slot, s] : r.slots) {
        slots.push_back({{"slot", slot},
                         {"connections_accepted", s.connections_accepted},
                         {"requests", s.requests}});
    }
    json::object exits;
    for (const auto& [cause, count] : r.worker_exits) exits[cause] = count;
    json::array events;
    for (const auto& e : r.events) events.push_back({{"time", e.time}, {"text", e.text}});
    json::object upgrade{
        {"binary_path", r.binary_path},
        {"upgrades", r.upgrades},
        {"failures", r.upgrade_failures},
        {"last", r.last_upgrade.empty() ? json::value(nullptr) : json::value(r.last_upgrade)},
        {"from_version",
         r.upgraded_from.empty() ? json::value(nullptr) : json::value(r.upgraded_from)}};
    json::array tls;
    for (const auto& l : r.tls) {
        tls.push_back({{"listener", l.listener},
                       {"subject", l.subject},
                       {"serial", l.serial},
                       {"not_after", l.not_after},
                       {"expires_in_seconds", l.expires_in_seconds}});
    }
    json::object root{{"version", r.version},
                      {"upgrade", std::move(upgrade)},
                      {"master_pid", r.master_pid},
                      {"phase", r.phase},
                      {"ready", r.ready},
                      {"target_workers", r.target_workers},
                      {"generation", r.generation},
                      {"uptime_seconds", r.uptime_seconds},
                      {"workers", std::move(workers)},
                      {"totals", counters_json(r.totals)},
                      {"slots", std::move(slots)},
                      {"worker_starts", r.worker_starts},
                      {"worker_exits", std::move(exits)},
                      {"reloads", r.reloads},
                      {"reload_failures", r.reload_failures},
                      {"log_lines_dropped",
                       {{"master", r.log_lines_dropped}, {"workers", r.totals.log_lines_dropped}}},
                      {"connection_handoffs",
                       {{"handed_off", r.totals.connections_handed_off},
                        {"adopted", r.totals.connections_adopted},
                        {"fallbacks", r.totals.handoff_fallbacks}}},
                      {"listen_queues", r.listen_queues},
                      {"connections_rescued", r.connections_rescued},
                      {"tls", std::move(tls)},
                      {"events", std::move(events)}};
    return json::serialize(root) + "\n";
}

std::string to_prometheus(const StatusReport& r) {
    std::ostringstream out;
    auto family = [&](const char* name, const char* type, const char* help) {
        out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    };
    const auto& t = r.totals;
    // A family of one series without labels.
    auto one = [&](const char* name, const char* type, const char* help, auto value) {
        family(name, type, help);
        out << name << " " << value << "\n";
    };

    family("prefork_build_info", "gauge", "The running prefork's version.");
    out << "prefork_build_info{version=\"" << r.version << "\"} 1\n";
    family("prefork_requests_total", "counter", "HTTP responses written, by status class.");
    for (std::size_t i = 0; i < t.responses.size(); ++i) {
        out << "prefork_requests_total{code=\"" << i + 1 << "xx\"} " << t.responses[i] << "\n";
    }
    family("prefork_request_duration_seconds", "histogram",
           "Time from a request's arrival to its response written.");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < control::kDurationBuckets.size(); ++i) {
        cumulative += t.durations[i];
        out << "prefork_request_duration_seconds_bucket{le=\""
            << number(control::kDurationBuckets[i]) << "\"} " << cumulative << "\n";
    }
    cumulative += t.durations.back();
    out << "prefork_request_duration_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n";
    out << "prefork_request_duration_seconds_sum " << number(t.duration_seconds_sum) << "\n";
    out << "prefork_request_duration_seconds_count " << cumulative << "\n";
    family("prefork_request_queue_seconds", "histogram",
           "Time from the arrival of a request's first byte (its kernel receive timestamp) to "
           "the start of its handling: how long it waited for its worker.");
    cumulative = 0;
    for (std::size_t i = 0; i < control::kDurationBuckets.size(); ++i) {
        cumulative += t.queue_times[i];
        out << "prefork_request_queue_seconds_bucket{le=\"" << number(control::kDurationBuckets[i])
            << "\"} " << cumulative << "\n";
    }
    cumulative += t.queue_times.back();
    out << "prefork_request_queue_seconds_bucket{le=\"+Inf\"} " << cumulative << "\n";
    out << "prefork_request_queue_seconds_sum " << number(t.queue_seconds_sum) << "\n";
    out << "prefork_request_queue_seconds_count " << cumulative << "\n";
    one("prefork_active_connections", "gauge", "Client connections open in all workers.",
        t.active_connections);
    one("prefork_received_bytes_total", "counter", "Bytes of requests read.", t.bytes_in);
    one("prefork_sent_bytes_total", "counter", "Bytes of responses written.", t.bytes_out);
    family("prefork_worker_slot_connections_total", "counter",
           "Connections accepted from the listeners, by worker slot (a replacement counts in "
           "the slot of the worker it replaced): how evenly the workers share them.");
    for (const auto& [slot, s] : r.slots) {
        out << "prefork_worker_slot_connections_total{slot=\"" << slot << "\"} "
            << s.connections_accepted << "\n";
    }
    family("prefork_worker_slot_requests_total", "counter", "Requests answered, by worker slot.");
    for (const auto& [slot, s] : r.slots) {
        out << "prefork_worker_slot_requests_total{slot=\"" << slot << "\"} " << s.requests << "\n";
    }
    one("prefork_worker_starts_total", "counter", "Worker processes started.", r.worker_starts);
    family("prefork_worker_exits_total", "counter",
           "Worker processes that ended, by cause (crash, hang, memory, recycle, reload, scale, "
           "stop, signal, upgrade).");
    for (const auto& cause : kExitCauses) {
        auto found = r.worker_exits.find(cause);
        out << "prefork_worker_exits_total{cause=\"" << cause << "\"} "
            << (found == r.worker_exits.end() ? 0 : found->second) << "\n";
    }
    one("prefork_reloads_total", "counter", "Reloads started (HUP or POST /reload).", r.reloads);
    one("prefork_reload_failures_total", "counter",
        "Reloads refused because the configuration did not parse or bind.", r.reload_failures);
    one("prefork_upgrades_total", "counter",
        "Upgrades of the master in place (USR2 or POST /upgrade) since prefork started.",
        r.upgrades);
    one("prefork_upgrade_failures_total", "counter",
        "Upgrades refused (the new binary missing, failing its check, or not starting): the "
        "running master stayed.",
        r.upgrade_failures);
    family("prefork_log_lines_dropped_total", "counter",
           "Log lines dropped because stderr was not taking them, by process.");
    out << "prefork_log_lines_dropped_total{process=\"master\"} " << r.log_lines_dropped << "\n";
    out << "prefork_log_lines_dropped_total{process=\"workers\"} " << t.log_lines_dropped << "\n";
    one("prefork_connections_handed_off_total", "counter",
        "Keep-alive connections a draining worker handed to the master for another worker.",
        t.connections_handed_off);
    one("prefork_connections_adopted_total", "counter",
        "Handed-off connections a worker of the current generation took over.",
        t.connections_adopted);
    one("prefork_connection_handoff_fallbacks_total", "counter",
        "Connections that could not be handed off or taken over, and were closed.",
        t.handoff_fallbacks);
    one("prefork_connections_rescued_total", "counter",
        "Connections the master took from the queue of a worker slot no worker accepted on "
        "(per-slot queues), and passed to a worker that did.",
        r.connections_rescued);
    one("prefork_tls_handshakes_total", "counter", "TLS handshakes completed.", t.tls_handshakes);
    one("prefork_tls_sessions_resumed_total", "counter",
        "TLS handshakes that resumed a session by its ticket (issued by any worker).",
        t.tls_sessions_resumed);
    one("prefork_tls_handshake_failures_total", "counter",
        "TLS handshakes that failed, timed out or that the client left.", t.tls_handshake_failures);
    family("prefork_tls_certificate_expiry_seconds", "gauge",
           "Seconds until the certificate a TLS listener serves expires (negative: expired).");
    for (const auto& l : r.tls) {
        out << "prefork_tls_certificate_expiry_seconds{listener=\"" << label(l.listener)
            << "\",subject=\"" << label(l.subject) << "\",serial=\"" << label(l.serial) << "\"} "
            << number(l.expires_in_seconds) << "\n";
    }
    family("prefork_workers", "gauge", "Worker processes by state and generation.");
    std::map<std::pair<std::string, int>, int> by_state;
    for (const auto& w : r.workers) ++by_state[{w.state, w.generation}];
    for (const auto& [key, count] : by_state) {
        out << "prefork_workers{state=\"" << key.first << "\",generation=\"" << key.second << "\"} "
            << count << "\n";
    }
    one("prefork_target_workers", "gauge", "The number of workers prefork keeps up.",
        r.target_workers);
    return out.str();
}

}  // namespace prefork::master

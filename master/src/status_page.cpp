// The /status page: what a person running prefork wants to see at a glance. One file, no
// external assets, refreshes itself every 2 seconds.

#include "status_report.hpp"

#include <cstdio>
#include <sstream>

namespace prefork::master {
namespace {

std::string escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string duration(double seconds) {
    char text[32];
    long s = static_cast<long>(seconds);
    if (s >= 86400) {
        std::snprintf(text, sizeof(text), "%ldd %ldh", s / 86400, s % 86400 / 3600);
    } else if (s >= 3600) {
        std::snprintf(text, sizeof(text), "%ldh %ldm", s / 3600, s % 3600 / 60);
    } else if (s >= 60) {
        std::snprintf(text, sizeof(text), "%ldm %lds", s / 60, s % 60);
    } else {
        std::snprintf(text, sizeof(text), "%.1fs", seconds);
    }
    return text;
}

std::string bytes(std::uint64_t n) {
    char text[32];
    if (n >= (1ULL << 30)) {
        std::snprintf(text, sizeof(text), "%.1f GiB", n / double(1ULL << 30));
    } else if (n >= (1ULL << 20)) {
        std::snprintf(text, sizeof(text), "%.1f MiB", n / double(1ULL << 20));
    } else {
        std::snprintf(text, sizeof(text), "%.0f KiB", n / 1024.0);
    }
    return text;
}

constexpr const char* kStyle = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #f6f7f9; }
h1 { font-size: 20px; margin: 0 0 4px; } .sub { color: #5b6475; margin-bottom: 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 18px; }
.card { background: #fff; border: 1px solid #dde1e8; border-radius: 6px; padding: 10px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; } .card span { color: #5b6475; font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #dde1e8; margin-bottom: 18px; }
th, td { padding: 6px 10px; text-align: right; border-bottom: 1px solid #eef0f4; white-space: nowrap; }
th { background: #eef1f6; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
tr.total td { font-weight: 600; background: #fafbfc; }
.state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; color: #fff; }
.ready { background: #2e8b57; } .starting { background: #3f7fd6; } .draining { background: #d79b1e; }
.stopping { background: #c0392b; } .late { color: #c0392b; font-weight: 600; }
.ok { color: #2e8b57; } .bad { color: #c0392b; }
ul { background: #fff; border: 1px solid #dde1e8; padding: 8px 28px; margin: 0; }
li { padding: 2px 0; } .time { color: #5b6475; font-family: monospace; margin-right: 8px; }
)";

}  // namespace

std::string to_html(const StatusReport& r) {
    std::ostringstream out;
    const auto& t = r.totals;
    out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        << "<meta http-equiv=\"refresh\" content=\"2\">"
        << "<title>prefork status</title><style>" << kStyle << "</style></head><body>\n";
    out << "<h1>prefork " << escape(r.version) << "</h1><div class=\"sub\">master pid "
        << r.master_pid << " &middot; up " << duration(r.uptime_seconds) << " &middot; generation "
        << r.generation << " &middot; <span class=\""
        << (r.ready ? "ok\">ready" : "bad\">not ready") << "</span> &middot; " << escape(r.phase)
        << "</div>\n";
    out << "<div class=\"sub\">binary " << escape(r.binary_path) << " &middot; ";
    if (r.last_upgrade.empty()) {
        out << "never upgraded";
    } else {
        out << "upgraded " << escape(r.last_upgrade) << " from " << escape(r.upgraded_from) << " ("
            << r.upgrades << " upgrade" << (r.upgrades == 1 ? "" : "s") << ")";
    }
    if (r.upgrade_failures > 0) out << " &middot; " << r.upgrade_failures << " refused";
    out << "</div>\n";
    for (const auto& l : r.tls) {
        out << "<div class=\"sub\">" << escape(l.listener) << " &middot; " << escape(l.subject)
            << " &middot; serial " << escape(l.serial) << " &middot; <span class=\""
            << (l.expires_in_seconds > 14 * 86400 ? "ok" : "bad") << "\">"
            << (l.expires_in_seconds > 0 ? "expires in " + duration(l.expires_in_seconds)
                                         : std::string("expired"))
            << "</span></div>\n";
    }

    out << "<div class=\"cards\">";
    auto card = [&](const std::string& value, const char* label) {
        out << "<div class=\"card\"><b>" << value << "</b><span>" << label << "</span></div>";
    };
    card(std::to_string(r.workers.size()) + " / " + std::to_string(r.target_workers),
         "workers / target");
    card(std::to_string(t.requests), "requests");
    card(std::to_string(t.active_connections), "open connections");
    card(std::to_string(t.responses[4]), "5xx responses");
    std::uint64_t crashes = r.worker_exits.count("crash") ? r.worker_exits.at("crash") : 0;
    std::uint64_t hangs = r.worker_exits.count("hang") ? r.worker_exits.at("hang") : 0;
    card(std::to_string(crashes + hangs), "crashes and hangs");
    card(std::to_string(r.reloads), "reloads");
    out << "</div>\n";

    out << "<table "
           "id=\"workers\"><thead><tr><th>pid</th><th>generation</th><th>state</th><th>uptime</th>"
        << "<th>requests</th><th>connections</th><th>RSS</th><th>last "
           "heartbeat</th></tr></thead><tbody>\n";
    for (const auto& w : r.workers) {
        char age[32];
        std::snprintf(age, sizeof(age), "%.1fs ago", w.heartbeat_age_seconds);
        out << "<tr class=\"worker\"><td>" << w.pid << "</td><td>" << w.generation
            << "</td><td><span class=\"state " << escape(w.state) << "\">" << escape(w.state)
            << (w.retiring ? " (retiring)" : "") << "</span></td><td>" << duration(w.uptime_seconds)
            << "</td><td>" << w.counters.requests << "</td><td>" << w.counters.active_connections
            << "</td><td>" << bytes(w.rss_bytes) << "</td><td"
            << (w.heartbeat_age_seconds > 3 ? " class=\"late\"" : "") << ">" << age
            << "</td></tr>\n";
    }
    out << "<tr class=\"total\"><td>all workers, ever</td><td></td><td></td><td></td><td>"
        << t.requests << "</td><td>" << t.active_connections << "</td><td></td><td></td></tr>\n";
    out << "</tbody></table>\n";

    out << "<table id=\"responses\"><thead><tr><th>responses</th>";
    for (int c = 1; c <= 5; ++c) out << "<th>" << c << "xx</th>";
    out << "<th>bytes in</th><th>bytes out</th></tr></thead><tbody><tr><td>since start</td>";
    for (auto count : t.responses) out << "<td>" << count << "</td>";
    out << "<td>" << bytes(t.bytes_in) << "</td><td>" << bytes(t.bytes_out)
        << "</td></tr></tbody></table>\n";

    out << "<h2 style=\"font-size:16px\">Recent events</h2><ul id=\"events\">\n";
    if (r.events.empty()) out << "<li>none yet</li>\n";
    for (auto it = r.events.rbegin(); it != r.events.rend(); ++it) {
        out << "<li><span class=\"time\">" << escape(it->time) << "</span>" << escape(it->text)
            << "</li>\n";
    }
    out << "</ul>\n</body></html>\n";
    return out.str();
}

}  // namespace prefork::master

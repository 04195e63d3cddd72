#include "option_table.hpp"

#include <prefork/common/fd_passing.hpp>

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace prefork::master {
namespace {

[[noreturn]] void invalid(const Setting& setting, const std::string& expected) {
    std::string where = setting.location.empty() ? "" : setting.location + ": ";
    throw UsageError(where + "invalid value \"" + setting.value + "\" for " + setting.name +
                     " (expected " + expected + ")");
}

std::uint64_t parse_count(const Setting& setting, std::uint64_t min, std::uint64_t max) {
    const std::string& text = setting.value;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
        value > max) {
        invalid(setting,
                "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    }
    return value;
}

std::chrono::milliseconds parse_seconds(const Setting& setting) {
    const std::string& text = setting.value;
    char* end = nullptr;
    double seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(seconds) ||
        seconds < 0.001 || seconds > 86400 * 365) {
        invalid(setting, "a number of seconds greater than 0");
    }
    return std::chrono::milliseconds(static_cast<long long>(std::llround(seconds * 1000)));
}

// A size in bytes: digits with K, M, G or T (powers of 1024), or "off" / "0" for none.
std::uint64_t parse_size(const Setting& setting) {
    const std::string& text = setting.value;
    if (text == "off" || text == "0") return 0;
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    std::string unit(end, text.data() + text.size());
    std::uint64_t scale = unit.empty()                 ? 1
                          : unit == "K" || unit == "k" ? 1ULL << 10
                          : unit == "M" || unit == "m" ? 1ULL << 20
                          : unit == "G" || unit == "g" ? 1ULL << 30
                          : unit == "T" || unit == "t" ? 1ULL << 40
                                                       : 0;
    if (ec != std::errc{} || end == text.data() || scale == 0 || value == 0 ||
        value > (1ULL << 50) / scale || value * scale < (1ULL << 20)) {
        invalid(setting, "a size of at least 1M, such as 512M or 2G, or off");
    }
    return value * scale;
}

std::string size_text(std::uint64_t bytes) {
    if (bytes == 0) return "off";
    for (auto [unit, scale] :
         {std::pair{"T", 1ULL << 40}, {"G", 1ULL << 30}, {"M", 1ULL << 20}, {"K", 1ULL << 10}}) {
        if (bytes % scale == 0) return std::to_string(bytes / scale) + unit;
    }
    return std::to_string(bytes);
}

ListenAddress parse_address(const Setting& setting, const char* what = "") {
    try {
        return parse_listen_address(setting.value);
    } catch (const AddressError& error) {
        throw UsageError((setting.location.empty() ? "" : setting.location + ": ") + what +
                         error.what());
    }
}

// The value that counts: the last one given.
const Setting& last(const std::vector<Setting>& said) {
    return said.back();
}

std::string seconds_text(std::chrono::milliseconds ms) {
    auto text = std::to_string(ms.count() / 1000.0);
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
    return text + "s";
}

std::vector<std::string> one(std::string text) {
    return {std::move(text)};
}

const OptionSpec kOptions[] = {
    {"bind", "PREFORK_BIND", "ADDR", "127.0.0.1:8080",
     "listen on HOST:PORT, [V6]:PORT or unix:PATH; repeatable (the environment: comma "
     "separated)",
     OptionShape::list, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.binds.clear();
         for (const Setting& bind : said) o.binds.push_back(parse_address(bind));
         if (o.binds.size() > kMaxFdsPerMessage) {
             throw UsageError("too many bind addresses: at most " +
                              std::to_string(kMaxFdsPerMessage));
         }
     },
     [](const Options& o) {
         std::vector<std::string> shown;
         for (const auto& address : o.binds) shown.push_back(address.to_string());
         return shown;
     },
     nullptr},
    {"reuseport", "PREFORK_REUSEPORT", "on|off", "on",
     "on: each TCP address gets an accept queue per worker slot (SO_REUSEPORT), kept by the "
     "master across worker restarts, new connections spread evenly; off: one queue shared by "
     "all workers (needs a restart to change)",
     OptionShape::value, true, false,
     [](Options& o, const std::vector<Setting>& said) {
         const std::string& value = last(said).value;
         if (value != "on" && value != "off") invalid(last(said), "on or off");
         o.reuseport = value == "on";
     },
     [](const Options& o) { return one(o.reuseport ? "on" : "off"); },
     [](Options& next, const Options& running) { next.reuseport = running.reuseport; }},
    {"workers", "PREFORK_WORKERS", "N|auto", "auto",
     "number of worker processes; auto: the CPU limit of prefork's cgroup, else the CPUs it "
     "may run on (read again on HUP)",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         if (last(said).value == "auto") return;  // the default, found by check()
         o.workers = static_cast<int>(parse_count(last(said), 1, 1024));
         o.workers_source = last(said).name;
     },
     [](const Options& o) { return one(std::to_string(o.workers)); }, nullptr},
    {"timeout", "PREFORK_TIMEOUT", "SECONDS", "30", "kill a worker silent for this long",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.timeout = parse_seconds(last(said));
         // Workers report every second: anything shorter kills healthy workers.
         if (o.timeout < std::chrono::seconds(2)) invalid(last(said), "at least 2 seconds");
     },
     [](const Options& o) { return one(seconds_text(o.timeout)); }, nullptr},
    {"graceful_timeout", "PREFORK_GRACEFUL_TIMEOUT", "SECONDS", "30",
     "how long a stopping worker may finish its requests", OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.graceful_timeout = parse_seconds(last(said));
     },
     [](const Options& o) { return one(seconds_text(o.graceful_timeout)); }, nullptr},
    {"shutdown_delay", "PREFORK_SHUTDOWN_DELAY", "SECONDS|auto[:MAX]", "0",
     "on TERM, first report not ready (/readyz 503) and keep serving this long, then stop "
     "gracefully; auto: until no new connection or request has come for the quiet period, "
     "at most MAX seconds (default 30)",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         const Setting& setting = last(said);
         o.shutdown_delay_auto = setting.value == "auto" || setting.value.starts_with("auto:");
         if (setting.value == "auto") {
             o.shutdown_delay = std::chrono::seconds(30);
         } else if (o.shutdown_delay_auto) {
             Setting most = setting;
             most.value = setting.value.substr(5);
             o.shutdown_delay = parse_seconds(most);
         } else {
             o.shutdown_delay =
                 setting.value == "0" ? std::chrono::milliseconds(0) : parse_seconds(setting);
         }
     },
     [](const Options& o) {
         std::string text = seconds_text(o.shutdown_delay);
         return one(o.shutdown_delay_auto ? "auto:" + text : text);
     },
     nullptr},
    {"shutdown_quiet_period", "PREFORK_SHUTDOWN_QUIET_PERIOD", "SECONDS", "1",
     "with --shutdown-delay auto: how long without a new connection or request means that "
     "traffic has stopped",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.shutdown_quiet_period = parse_seconds(last(said));
         // Workers report every 100 ms meanwhile: a shorter period would see gaps as quiet.
         if (o.shutdown_quiet_period < std::chrono::milliseconds(300)) {
             invalid(last(said), "at least 0.3 seconds");
         }
     },
     [](const Options& o) { return one(seconds_text(o.shutdown_quiet_period)); }, nullptr},
    {"max_requests", "PREFORK_MAX_REQUESTS", "N", "0",
     "replace a worker after about N requests; 0: never", OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.max_requests = parse_count(last(said), 0, 1'000'000'000);
     },
     [](const Options& o) { return one(std::to_string(o.max_requests)); }, nullptr},
    {"max_requests_jitter", "PREFORK_MAX_REQUESTS_JITTER", "N", "0",
     "add 0..N to each worker's --max-requests, so that workers are not all replaced at once",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.max_requests_jitter = parse_count(last(said), 0, 1'000'000'000);
     },
     [](const Options& o) { return one(std::to_string(o.max_requests_jitter)); }, nullptr},
    {"worker_memory_limit", "PREFORK_WORKER_MEMORY_LIMIT", "SIZE", "off",
     "replace a worker whose resident memory exceeds SIZE (512M, 2G), as --max-requests does; "
     "kill one above twice SIZE at once",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.worker_memory_limit = parse_size(last(said));
     },
     [](const Options& o) { return one(size_text(o.worker_memory_limit)); }, nullptr},
    {"env", nullptr, "NAME=VALUE", "", "extra environment for the workers; repeatable",
     OptionShape::pairs, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.worker_env.clear();
         for (const Setting& pair : said) {
             auto equals = pair.value.find('=');
             if (equals == std::string::npos || equals == 0) invalid(pair, "NAME=VALUE");
             o.worker_env.push_back(pair.value);
         }
     },
     [](const Options& o) { return o.worker_env; }, nullptr},
    {"config", "PREFORK_CONFIG", "FILE", "none", "the same settings in a TOML file, re-read on HUP",
     OptionShape::value, false, false,
     [](Options& o, const std::vector<Setting>& said) { o.config_file = last(said).value; },
     [](const Options& o) { return one(o.config_file); },
     [](Options& next, const Options& running) { next.config_file = running.config_file; }},
    {"admin", "PREFORK_ADMIN", "ADDR", "off",
     "serve /healthz /readyz /metrics /status and controls on ADDR (loopback or unix:PATH: it "
     "has no authentication)",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.admin.reset();
         if (last(said).value != "off") o.admin = parse_address(last(said), "--admin: ");
     },
     [](const Options& o) { return one(o.admin ? o.admin->to_string() : "off"); }, nullptr},
    {"access_log", nullptr, "-|PATH|off", "off", "one line per request, from the workers",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.access_log = last(said).value == "off" ? "" : last(said).value;
     },
     [](const Options& o) { return one(o.access_log.empty() ? "off" : o.access_log); }, nullptr},
    {"tls_cert", nullptr, "FILE", "none",
     "the certificate chain (PEM) of the tls: listeners; re-read on HUP", OptionShape::value, true,
     true, [](Options& o, const std::vector<Setting>& said) { o.tls_cert = last(said).value; },
     [](const Options& o) { return one(o.tls_cert.empty() ? "none" : o.tls_cert); }, nullptr},
    {"tls_key", nullptr, "FILE", "none",
     "the private key (PEM) of --tls-cert; re-read on HUP; read by the master only",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) { o.tls_key = last(said).value; },
     [](const Options& o) { return one(o.tls_key.empty() ? "none" : o.tls_key); }, nullptr},
    {"tls_ciphers", nullptr, "LIST", "ECDHE with AES-GCM or ChaCha20",
     "TLS 1.2's cipher list, in OpenSSL's syntax (TLS 1.3's suites are OpenSSL's defaults)",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) { o.tls_ciphers = last(said).value; },
     [](const Options& o) { return one(o.tls_ciphers.empty() ? "default" : o.tls_ciphers); },
     nullptr},
    {"tls_ticket_rotation", nullptr, "SECONDS", "3600",
     "a new session-ticket key this often; a ticket stays good for as long, on every worker",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         o.tls_ticket_rotation = parse_seconds(last(said));
         if (o.tls_ticket_rotation < std::chrono::seconds(1)) {
             invalid(last(said), "at least 1 second");
         }
     },
     [](const Options& o) { return one(seconds_text(o.tls_ticket_rotation)); }, nullptr},
    {"pid_file", nullptr, "FILE", "none", "write the master's pid to FILE", OptionShape::value,
     true, false,
     [](Options& o, const std::vector<Setting>& said) { o.pid_file = last(said).value; },
     [](const Options& o) { return one(o.pid_file.empty() ? "none" : o.pid_file); },
     [](Options& next, const Options& running) { next.pid_file = running.pid_file; }},
    {"log_format", nullptr, "text|json", "text", "format of the log lines on stderr",
     OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         const std::string& value = last(said).value;
         if (value == "text") {
             o.log_format = log::Format::text;
         } else if (value == "json") {
             o.log_format = log::Format::json;
         } else {
             invalid(last(said), "text or json");
         }
     },
     [](const Options& o) { return one(o.log_format == log::Format::json ? "json" : "text"); },
     nullptr},
    {"log_level", "PREFORK_LOG_LEVEL", "debug|info|warning|error", "info",
     "debug, info, warning or error", OptionShape::value, true, true,
     [](Options& o, const std::vector<Setting>& said) {
         auto level = log::parse_level(last(said).value);
         if (!level) invalid(last(said), "debug, info, warning or error");
         o.log_level = *level;
     },
     [](const Options& o) { return one(log::level_name(o.log_level)); }, nullptr},
};

}  // namespace

std::span<const OptionSpec> option_table() {
    return kOptions;
}

const OptionSpec* find_option(std::string_view key) {
    for (const OptionSpec& spec : kOptions) {
        if (key == spec.key) return &spec;
    }
    return nullptr;
}

std::string long_option(const OptionSpec& spec) {
    std::string name = std::string("--") + spec.key;
    std::replace(name.begin(), name.end(), '_', '-');
    return name;
}

}  // namespace prefork::master

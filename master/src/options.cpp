#include "options.hpp"

#include "config_file.hpp"

#include <prefork/common/fd_passing.hpp>

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

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

std::vector<std::string> split_commas(const std::string& text) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        if (comma > start) parts.push_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    return parts;
}

std::optional<Setting> from_environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return Setting{value, name, ""};
}

Settings read_environment() {
    Settings env;
    if (auto binds = from_environment("PREFORK_BIND")) {
        env.binds.emplace();
        for (auto& address : split_commas(binds->value))
            env.binds->push_back({address, binds->name, ""});
    }
    env.workers = from_environment("PREFORK_WORKERS");
    env.timeout = from_environment("PREFORK_TIMEOUT");
    env.graceful_timeout = from_environment("PREFORK_GRACEFUL_TIMEOUT");
    env.shutdown_delay = from_environment("PREFORK_SHUTDOWN_DELAY");
    env.max_requests = from_environment("PREFORK_MAX_REQUESTS");
    env.max_requests_jitter = from_environment("PREFORK_MAX_REQUESTS_JITTER");
    env.log_level = from_environment("PREFORK_LOG_LEVEL");
    env.config = from_environment("PREFORK_CONFIG");
    env.admin = from_environment("PREFORK_ADMIN");
    return env;
}

int default_workers() {
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? static_cast<int>(cpus) : 1;
}

// Turns what was said into checked options, with the defaults for what was not.
Options check(const Settings& said) {
    Options options;
    if (said.binds && !said.binds->empty()) {
        for (const Setting& bind : *said.binds) {
            try {
                options.binds.push_back(parse_listen_address(bind.value));
            } catch (const AddressError& error) {
                throw UsageError((bind.location.empty() ? "" : bind.location + ": ") +
                                 error.what());
            }
        }
    } else {
        options.binds.push_back(parse_listen_address("127.0.0.1:8080"));
    }
    if (options.binds.size() > kMaxFdsPerMessage) {
        throw UsageError("too many bind addresses: at most " + std::to_string(kMaxFdsPerMessage));
    }
    options.workers =
        said.workers ? static_cast<int>(parse_count(*said.workers, 1, 1024)) : default_workers();
    if (said.timeout) {
        options.timeout = parse_seconds(*said.timeout);
        // Workers report every second: anything shorter kills healthy workers.
        if (options.timeout < std::chrono::seconds(2)) invalid(*said.timeout, "at least 2 seconds");
    }
    if (said.graceful_timeout) options.graceful_timeout = parse_seconds(*said.graceful_timeout);
    if (said.shutdown_delay && said.shutdown_delay->value != "0") {
        options.shutdown_delay = parse_seconds(*said.shutdown_delay);
    }
    if (said.max_requests) options.max_requests = parse_count(*said.max_requests, 0, 1'000'000'000);
    if (said.max_requests_jitter) {
        options.max_requests_jitter = parse_count(*said.max_requests_jitter, 0, 1'000'000'000);
    }
    for (const Setting& pair : said.env) {
        auto equals = pair.value.find('=');
        if (equals == std::string::npos || equals == 0) invalid(pair, "NAME=VALUE");
        options.worker_env.push_back(pair.value);
    }
    if (said.pid_file) options.pid_file = said.pid_file->value;
    if (said.log_format) {
        if (said.log_format->value == "text") {
            options.log_format = log::Format::text;
        } else if (said.log_format->value == "json") {
            options.log_format = log::Format::json;
        } else {
            invalid(*said.log_format, "text or json");
        }
    }
    if (said.log_level) {
        auto level = log::parse_level(said.log_level->value);
        if (!level) invalid(*said.log_level, "debug, info, warning or error");
        options.log_level = *level;
    }
    if (said.config) options.config_file = said.config->value;
    if (said.admin && said.admin->value != "off") {
        try {
            options.admin = parse_listen_address(said.admin->value);
        } catch (const AddressError& error) {
            throw UsageError((said.admin->location.empty() ? "" : said.admin->location + ": ") +
                             "--admin: " + error.what());
        }
    }
    if (said.access_log && said.access_log->value != "off")
        options.access_log = said.access_log->value;
    if (!said.command || said.command->empty()) {
        throw UsageError(
            "no worker command given (usage: prefork [OPTIONS] -- WORKER_COMMAND [ARGS...], or "
            "command = [...] in the configuration file)");
    }
    options.command = *said.command;
    return options;
}

}  // namespace

void Settings::fill_from(const Settings& weaker) {
    auto fill = [](auto& mine, const auto& theirs) {
        if (!mine && theirs) mine = theirs;
    };
    fill(binds, weaker.binds);
    fill(workers, weaker.workers);
    fill(timeout, weaker.timeout);
    fill(graceful_timeout, weaker.graceful_timeout);
    fill(shutdown_delay, weaker.shutdown_delay);
    fill(max_requests, weaker.max_requests);
    fill(max_requests_jitter, weaker.max_requests_jitter);
    fill(pid_file, weaker.pid_file);
    fill(log_format, weaker.log_format);
    fill(log_level, weaker.log_level);
    fill(config, weaker.config);
    fill(admin, weaker.admin);
    fill(access_log, weaker.access_log);
    fill(command, weaker.command);
    // The weaker source's variables first: a worker sees the last value of a name.
    env.insert(env.begin(), weaker.env.begin(), weaker.env.end());
}

ParsedCommandLine parse_command_line(int argc, char** argv) {
    ParsedCommandLine parsed;
    Settings& cli = parsed.settings;
    using Setter = std::function<void(Setting)>;
    auto into = [](std::optional<Setting>& field) -> Setter {
        return [&field](Setting s) { field = std::move(s); };
    };
    const std::map<std::string, Setter> with_value = {
        {"--bind",
         [&](Setting s) {
             if (!cli.binds) cli.binds.emplace();
             cli.binds->push_back(std::move(s));
         }},
        {"--workers", into(cli.workers)},
        {"--timeout", into(cli.timeout)},
        {"--graceful-timeout", into(cli.graceful_timeout)},
        {"--shutdown-delay", into(cli.shutdown_delay)},
        {"--max-requests", into(cli.max_requests)},
        {"--max-requests-jitter", into(cli.max_requests_jitter)},
        {"--env", [&](Setting s) { cli.env.push_back(std::move(s)); }},
        {"--pid-file", into(cli.pid_file)},
        {"--log-format", into(cli.log_format)},
        {"--log-level", into(cli.log_level)},
        {"--config", into(cli.config)},
        {"--admin", into(cli.admin)},
        {"--access-log", into(cli.access_log)},
    };

    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            cli.command = std::vector<std::string>(argv + i + 1, argv + argc);
            break;
        }
        if (arg == "-h" || arg == "--help") return {Action::help, {}};
        if (arg == "-V" || arg == "--version") return {Action::version, {}};
        if (!arg.starts_with("-")) {  // the worker command starts here
            cli.command = std::vector<std::string>(argv + i, argv + argc);
            break;
        }
        std::string name = arg, value;
        bool inline_value = false;
        if (auto equals = arg.find('='); equals != std::string::npos) {
            name = arg.substr(0, equals);
            value = arg.substr(equals + 1);
            inline_value = true;
        }
        auto option = with_value.find(name);
        if (option == with_value.end()) {
            throw UsageError("unknown option " + name + " (see prefork --help)");
        }
        if (!inline_value) {
            if (i + 1 >= argc) throw UsageError("option " + name + " needs a value");
            value = argv[++i];
        }
        option->second(Setting{value, name, ""});
    }
    if (cli.command && cli.command->empty()) cli.command.reset();
    return parsed;
}

Options resolve_options(const Settings& command_line) {
    Settings said = command_line;
    Settings environment = read_environment();
    std::optional<Setting> config = said.config ? said.config : environment.config;
    if (config) {
        try {
            said.fill_from(read_config_file(config->value));
        } catch (const ConfigError& error) {
            throw UsageError(error.what());
        }
    }
    said.fill_from(environment);
    return check(said);
}

std::string usage_text() {
    return R"(usage: prefork [OPTIONS] -- WORKER_COMMAND [ARGS...]
       prefork --config FILE            (the worker command in the file)

Binds the listening sockets, starts WORKER_COMMAND as worker processes, hands each
worker the sockets, and supervises them.

options (environment variable in brackets; the command line wins over the configuration
file, which wins over the environment):
  --bind ADDR               listen on HOST:PORT, [V6]:PORT or unix:PATH; repeatable
                            [PREFORK_BIND, comma separated] (default 127.0.0.1:8080)
  --workers N               number of worker processes [PREFORK_WORKERS] (default: CPUs)
  --timeout SECONDS         kill a worker silent for this long [PREFORK_TIMEOUT] (default 30)
  --graceful-timeout SECONDS
                            how long a stopping worker may finish its requests
                            [PREFORK_GRACEFUL_TIMEOUT] (default 30)
  --shutdown-delay SECONDS  on TERM, first report not ready (/readyz 503) and keep
                            serving this long, then stop gracefully [PREFORK_SHUTDOWN_DELAY]
                            (default 0)
  --max-requests N          replace a worker after about N requests; 0: never
                            [PREFORK_MAX_REQUESTS] (default 0)
  --max-requests-jitter N   add 0..N to each worker's --max-requests, so that workers
                            are not all replaced at once [PREFORK_MAX_REQUESTS_JITTER]
  --env NAME=VALUE          extra environment for the workers; repeatable
  --config FILE             the same settings in a TOML file, re-read on HUP [PREFORK_CONFIG]
  --admin ADDR              serve /healthz /readyz /metrics /status and controls on ADDR
                            (loopback or unix:PATH: it has no authentication) [PREFORK_ADMIN]
  --access-log -|PATH|off   one line per request, from the workers (default off)
  --pid-file FILE           write the master's pid to FILE
  --log-format text|json    format of the log lines on stderr (default text)
  --log-level LEVEL         debug, info, warning or error [PREFORK_LOG_LEVEL] (default info)
  -h, --help                print this help
  -V, --version             print the version

signals: TERM/INT stop gracefully (a second one stops at once), QUIT stops at once,
HUP reloads (re-reads the configuration, replaces every worker, fails no request),
TTIN/TTOU add/remove a worker, USR1 reopens the access log, CHLD reaps (prefork is a
child subreaper).
)";
}

}  // namespace prefork::master

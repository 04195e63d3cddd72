#include "options.hpp"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

namespace prefork::master {
namespace {

// The values as given, before defaults: a field left empty was not said.
struct Given {
    std::vector<std::string> binds;
    std::optional<std::string> workers, timeout, graceful_timeout, log_format;
    std::optional<std::string> max_requests, max_requests_jitter, log_level;
    std::vector<std::string> env;
    std::string pid_file;
};

std::optional<std::string> environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string(value);
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

int parse_count(const std::string& name, const std::string& text, int min, int max) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < min ||
        value > max) {
        throw UsageError("invalid value \"" + text + "\" for " + name +
                         " (expected a whole number from " + std::to_string(min) + " to " +
                         std::to_string(max) + ")");
    }
    return value;
}

std::chrono::milliseconds parse_seconds(const std::string& name, const std::string& text) {
    char* end = nullptr;
    double seconds = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(seconds) ||
        seconds <= 0 || seconds > 86400 * 365) {
        throw UsageError("invalid value \"" + text + "\" for " + name +
                         " (expected a number of seconds greater than 0)");
    }
    return std::chrono::milliseconds(static_cast<long long>(std::llround(seconds * 1000)));
}

int default_workers() {
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    return cpus > 0 ? static_cast<int>(cpus) : 1;
}

Options resolve(Given given, std::vector<std::string> command) {
    if (given.binds.empty()) {
        if (auto env = environment("PREFORK_BIND")) given.binds = split_commas(*env);
    }
    if (!given.workers) given.workers = environment("PREFORK_WORKERS");
    if (!given.timeout) given.timeout = environment("PREFORK_TIMEOUT");
    if (!given.graceful_timeout) given.graceful_timeout = environment("PREFORK_GRACEFUL_TIMEOUT");
    if (!given.max_requests) given.max_requests = environment("PREFORK_MAX_REQUESTS");
    if (!given.log_level) given.log_level = environment("PREFORK_LOG_LEVEL");
    if (!given.max_requests_jitter) {
        given.max_requests_jitter = environment("PREFORK_MAX_REQUESTS_JITTER");
    }

    Options options;
    if (given.binds.empty()) given.binds.push_back("127.0.0.1:8080");
    for (const auto& bind : given.binds) {
        try {
            options.binds.push_back(parse_listen_address(bind));
        } catch (const AddressError& error) {
            throw UsageError(error.what());
        }
    }
    options.workers =
        given.workers ? parse_count("--workers", *given.workers, 1, 1024) : default_workers();
    if (given.timeout) options.timeout = parse_seconds("--timeout", *given.timeout);
    if (given.graceful_timeout) {
        options.graceful_timeout = parse_seconds("--graceful-timeout", *given.graceful_timeout);
    }
    if (given.max_requests) {
        options.max_requests = parse_count("--max-requests", *given.max_requests, 0, 1'000'000'000);
    }
    if (given.max_requests_jitter) {
        options.max_requests_jitter =
            parse_count("--max-requests-jitter", *given.max_requests_jitter, 0, 1'000'000'000);
    }
    for (const auto& pair : given.env) {
        auto equals = pair.find('=');
        if (equals == std::string::npos || equals == 0) {
            throw UsageError("invalid value \"" + pair + "\" for --env (expected NAME=VALUE)");
        }
        options.worker_env.push_back(pair);
    }
    options.pid_file = given.pid_file;
    if (given.log_format) {
        if (*given.log_format == "text") {
            options.log_format = log::Format::text;
        } else if (*given.log_format == "json") {
            options.log_format = log::Format::json;
        } else {
            throw UsageError("invalid value \"" + *given.log_format +
                             "\" for --log-format (expected text or json)");
        }
    }
    if (given.log_level) {
        auto level = log::parse_level(*given.log_level);
        if (!level) {
            throw UsageError("invalid value \"" + *given.log_level +
                             "\" for --log-level (expected debug, info, warning or error)");
        }
        options.log_level = *level;
    }
    if (command.empty()) {
        throw UsageError(
            "no worker command given (usage: prefork [OPTIONS] -- WORKER_COMMAND [ARGS...])");
    }
    options.command = std::move(command);
    return options;
}

}  // namespace

ParsedCommandLine parse_command_line(int argc, char** argv) {
    Given given;
    using Setter = std::function<void(const std::string&)>;
    const std::map<std::string, Setter> with_value = {
        {"--bind", [&](const std::string& v) { given.binds.push_back(v); }},
        {"--workers", [&](const std::string& v) { given.workers = v; }},
        {"--timeout", [&](const std::string& v) { given.timeout = v; }},
        {"--graceful-timeout", [&](const std::string& v) { given.graceful_timeout = v; }},
        {"--max-requests", [&](const std::string& v) { given.max_requests = v; }},
        {"--max-requests-jitter", [&](const std::string& v) { given.max_requests_jitter = v; }},
        {"--env", [&](const std::string& v) { given.env.push_back(v); }},
        {"--pid-file", [&](const std::string& v) { given.pid_file = v; }},
        {"--log-format", [&](const std::string& v) { given.log_format = v; }},
        {"--log-level", [&](const std::string& v) { given.log_level = v; }},
    };

    ParsedCommandLine parsed;
    std::vector<std::string> command;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            command.assign(argv + i + 1, argv + argc);
            break;
        }
        if (arg == "-h" || arg == "--help") return {Action::help, {}};
        if (arg == "-V" || arg == "--version") return {Action::version, {}};
        if (!arg.starts_with("-")) {  // the worker command starts here
            command.assign(argv + i, argv + argc);
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
        option->second(value);
    }
    parsed.options = resolve(std::move(given), std::move(command));
    return parsed;
}

std::string usage_text() {
    return R"(usage: prefork [OPTIONS] -- WORKER_COMMAND [ARGS...]

Binds the listening sockets, starts WORKER_COMMAND as worker processes, hands each
worker the sockets, and supervises them.

options (environment variable in brackets):
  --bind ADDR               listen on HOST:PORT, [V6]:PORT or unix:PATH; repeatable
                            [PREFORK_BIND, comma separated] (default 127.0.0.1:8080)
  --workers N               number of worker processes [PREFORK_WORKERS] (default: CPUs)
  --timeout SECONDS         kill a worker silent for this long [PREFORK_TIMEOUT] (default 30)
  --graceful-timeout SECONDS
                            how long a stopping worker may finish its requests
                            [PREFORK_GRACEFUL_TIMEOUT] (default 30)
  --max-requests N          replace a worker after about N requests; 0: never
                            [PREFORK_MAX_REQUESTS] (default 0)
  --max-requests-jitter N   add 0..N to each worker's --max-requests, so that workers
                            are not all replaced at once [PREFORK_MAX_REQUESTS_JITTER]
  --env NAME=VALUE          extra environment for the workers; repeatable
  --pid-file FILE           write the master's pid to FILE
  --log-format text|json    format of the log lines on stderr (default text)
  --log-level LEVEL         debug, info, warning or error [PREFORK_LOG_LEVEL] (default info)
  -h, --help                print this help
  -V, --version             print the version

signals: TERM/INT stop gracefully (a second one stops at once), QUIT stops at once,
TTIN/TTOU add/remove a worker, CHLD reaps (prefork is a child subreaper).
)";
}

}  // namespace prefork::master

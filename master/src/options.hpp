#pragma once

#include <prefork/common/listen_address.hpp>
#include <prefork/common/log.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace prefork::master {

// Everything the master is told, from the command line and the PREFORK_* environment.
struct Options {
    std::vector<ListenAddress> binds;
    int workers = 1;
    std::chrono::milliseconds timeout{30'000};
    std::chrono::milliseconds graceful_timeout{30'000};
    std::uint64_t max_requests = 0;  // recycle a worker after about this many; 0: never
    std::uint64_t max_requests_jitter = 0;
    std::vector<std::string> worker_env;  // NAME=VALUE, added to the workers' environment
    std::string pid_file;
    log::Format log_format = log::Format::text;
    log::Level log_level = log::Level::info;
    std::vector<std::string> command;  // the worker command and its arguments
};

// What the command line asked for besides running.
enum class Action { run, help, version };

struct ParsedCommandLine {
    Action action = Action::run;
    Options options;
};

// A user's mistake on the command line; what() is one sentence.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Reads argv, then fills what it left unset from the PREFORK_* environment, then defaults.
ParsedCommandLine parse_command_line(int argc, char** argv);

std::string usage_text();

}  // namespace prefork::master

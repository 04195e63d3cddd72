#pragma once

#include "settings.hpp"

#include <prefork/common/listen_address.hpp>
#include <prefork/common/log.hpp>
#include <prefork/common/tls_credentials.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace prefork::master {

// Everything the master runs by, checked: the command line over the configuration file
// over the PREFORK_* environment over the defaults.
struct Options {
    std::vector<ListenAddress> binds;
    bool reuseport = true;  // an accept queue per worker slot for each TCP address
    int workers = 1;
    std::string workers_source;  // for the start log: --workers, or where `auto` found it
    std::chrono::milliseconds timeout{30'000};
    std::chrono::milliseconds graceful_timeout{30'000};
    std::chrono::milliseconds shutdown_delay{0};  // not ready but serving, after TERM
    bool shutdown_delay_auto =
        false;  // the delay ends once traffic has stopped (at most the above)
    std::chrono::milliseconds shutdown_quiet_period{1000};  // what "stopped" means
    std::uint64_t max_requests = 0;  // recycle a worker after about this many; 0: never
    std::uint64_t max_requests_jitter = 0;
    std::uint64_t worker_memory_limit = 0;  // bytes of resident memory; 0: no limit
    std::vector<std::string> worker_env;    // NAME=VALUE, added to the workers' environment
    std::string pid_file;
    log::Format log_format = log::Format::text;
    log::Level log_level = log::Level::info;
    std::string config_file;             // empty: none
    std::optional<ListenAddress> admin;  // the admin endpoint; none: off
    std::string access_log;              // "-", a path, or empty: off
    std::vector<std::string> command;    // the worker command and its arguments
    std::string tls_cert, tls_key;       // files: the certificate chain and its key
    std::string tls_ciphers;             // TLS 1.2's cipher list; empty: tls::kDefaultCiphers
    std::chrono::milliseconds tls_ticket_rotation{3'600'000};  // a new session-ticket key
    // Read and checked from tls_cert and tls_key when a listener serves TLS; null otherwise.
    std::shared_ptr<const tls::Credentials> tls;
};

// What the command line asked for besides running. check: read and check everything a run
// would use (options, environment, configuration file, worker command), then exit.
enum class Action { run, help, version, check };

struct ParsedCommandLine {
    Action action = Action::run;
    Settings settings;  // what the command line said
};

// A user's mistake in an option, the environment or the configuration file; what() is
// one line that names it.
class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Reads argv alone (nothing else); throws UsageError.
ParsedCommandLine parse_command_line(int argc, char** argv);

// Reads the configuration file (--config or PREFORK_CONFIG) and the environment, fills
// what the command line left unsaid from them, and checks every value. Called at start
// and again on each reload. Throws UsageError.
Options resolve_options(const Settings& command_line);

// The two halves of resolve_options. gather_settings: the command line filled from the
// configuration file and the environment (what the options are made of, kept so that an
// upgraded master runs by the very same); check_settings: those values checked.
Settings gather_settings(const Settings& command_line);
Options check_settings(const Settings& said);

std::string usage_text();

}  // namespace prefork::master

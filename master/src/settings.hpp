#pragma once

#include <optional>
#include <string>
#include <vector>

namespace prefork::master {

// One value as a user gave it, with where it came from, so that a mistake can be named:
// "--workers", "PREFORK_WORKERS", or "workers" at "prefork.toml:3".
struct Setting {
    std::string value;
    std::string name;
    std::string location;  // "FILE:LINE" for a configuration file; empty otherwise
};

// Everything one source (the command line, the configuration file, the environment)
// said; what it did not say is empty.
struct Settings {
    std::optional<std::vector<Setting>> binds;
    std::optional<Setting> workers, timeout, graceful_timeout, max_requests, max_requests_jitter;
    std::optional<Setting> shutdown_delay;
    std::optional<Setting> pid_file, log_format, log_level, config, admin, access_log;
    std::vector<Setting> env;  // NAME=VALUE each
    std::optional<std::vector<std::string>> command;

    // Fills what this source left unsaid from a source it overrides.
    void fill_from(const Settings& weaker);
};

}  // namespace prefork::master

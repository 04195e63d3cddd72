#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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
// said, by option key (option_table.hpp); what it did not say is absent.
struct Settings {
    std::map<std::string, std::vector<Setting>, std::less<>> values;
    std::optional<std::vector<std::string>> command;

    // The values given for `key` (several for a repeatable option), or null.
    const std::vector<Setting>* find(std::string_view key) const;
    void add(std::string_view key, Setting setting) {
        values[std::string(key)].push_back(std::move(setting));
    }
    // Fills what this source left unsaid from a source it overrides (NAME=VALUE pairs
    // add up instead: the weaker source's first).
    void fill_from(const Settings& weaker);
};

}  // namespace prefork::master

#pragma once

#include "options.hpp"

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::master {

enum class OptionShape {
    value,  // given once; the strongest source wins (--workers 4)
    list,   // repeatable; the strongest source's list wins (--bind A --bind B, PREFORK_BIND=A,B)
    pairs,  // repeatable NAME=VALUE; every source adds to it (--env, [env])
};

// One option of the master, declared once. The command line, the environment, the
// configuration file, the merge of the three, --help, the reload log and the test that
// checks the README's option table are all driven by these declarations: adding an
// option is one entry in option_table.cpp (and a field of Options) plus its use.
struct OptionSpec {
    const char* key;           // the file's key; the long option is --key, with '-' for '_'
    const char* environment;   // PREFORK_..., or nullptr
    const char* value_name;    // in --help: "N", "SECONDS", "ADDR"
    const char* default_text;  // the default as --help and the README say it
    const char* help;          // for --help
    OptionShape shape;
    bool in_file;     // may be set in the configuration file
    bool reloadable;  // a reload may change it (else the running value stays)
    // Checks what was said and stores it in `options`; throws UsageError naming it.
    void (*apply)(Options& options, const std::vector<Setting>& said);
    // The value as the reload log shows it: one element, or one per item of a list.
    std::vector<std::string> (*show)(const Options& options);
    // Puts the running value back into `next` (for an option a reload may not change).
    void (*keep)(Options& next, const Options& running);
};

std::span<const OptionSpec> option_table();
// The declaration of the option with this file key, or null.
const OptionSpec* find_option(std::string_view key);
// "--graceful-timeout" for graceful_timeout.
std::string long_option(const OptionSpec& spec);

}  // namespace prefork::master

#pragma once

#include "settings.hpp"

#include <stdexcept>
#include <string>

namespace prefork::master {

// A configuration file that cannot be used; what() is one line naming the file, the line
// and the problem.
class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Reads a TOML configuration file. Its keys are the options' keys (option_table.cpp: the
// long option names with '_' for '-'), and the worker command:
//   bind = ["127.0.0.1:8080"]        workers = 4        timeout = 30
//   shutdown_delay = 10              admin = "127.0.0.1:9000"
//   command = ["/usr/local/bin/app", "--flag"]
//   [env]
//   NAME = "value"
// Throws ConfigError for a file that cannot be read or parsed, an unknown key, or a value
// of the wrong type.
Settings read_config_file(const std::string& path);

}  // namespace prefork::master

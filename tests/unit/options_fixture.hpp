#pragma once

// What the option tests share: a clean PREFORK_* environment (every variable the option
// table declares), a configuration file of the test's own, and resolving a command line.

#include "option_table.hpp"
#include "options.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace prefork::master {

class OptionsFixture : public ::testing::Test {
  protected:
    void SetUp() override { clear_environment(); }
    void TearDown() override { clear_environment(); }

    static void clear_environment() {
        for (const OptionSpec& spec : option_table()) {
            if (spec.environment != nullptr) ::unsetenv(spec.environment);
        }
    }
    // Writes the configuration file (one per test, removed with it) and returns its path.
    std::string config(const std::string& text) { return dir_.write("prefork.toml", text); }

    static ParsedCommandLine parse(std::vector<std::string> args) {
        std::vector<char*> argv;
        static std::string program = "prefork";
        argv.push_back(program.data());
        for (auto& arg : args) argv.push_back(arg.data());
        return parse_command_line(static_cast<int>(argv.size()), argv.data());
    }
    static Options resolve(std::vector<std::string> args) {
        return resolve_options(parse(std::move(args)).settings);
    }

  private:
    testing::TempDir dir_{"prefork-options"};
};

}  // namespace prefork::master

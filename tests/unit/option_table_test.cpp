// The option declarations drive every way an option is given and shown: these tests make
// an option that is declared but not readable from one of its sources, missing from
// --help or the reload log, or described differently in the README, fail.

#include "options_diff.hpp"
#include "options_fixture.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace prefork::master {
namespace {

// A valid value for each option, different from its default. An option declared without
// one here fails EveryOptionHasASampleValue.
const std::map<std::string, std::string> kSamples = {
    {"bind", "127.0.0.1:9001"},
    {"reuseport", "off"},
    {"workers", "3"},
    {"timeout", "7"},
    {"graceful_timeout", "8"},
    {"shutdown_delay", "9"},
    {"shutdown_quiet_period", "2.5"},
    {"max_requests", "10"},
    {"max_requests_jitter", "11"},
    {"worker_memory_limit", "12M"},
    {"env", "A=b"},
    {"config", "/nonexistent.toml"},
    {"admin", "127.0.0.1:9002"},
    {"access_log", "-"},
    {"pid_file", "/tmp/prefork-option-test.pid"},
    {"log_format", "json"},
    {"log_level", "debug"},
    {"tls_cert", "/tmp/prefork-option-test.crt"},
    {"tls_key", "/tmp/prefork-option-test.key"},
    {"tls_ciphers", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"tls_ticket_rotation", "600"},
};

class OptionTable : public OptionsFixture {
  protected:
    static Options from_command_line(std::vector<std::string> args) {
        return resolve(std::move(args));
    }
    static Options defaults() { return from_command_line({"--", "app"}); }
};

std::string joined(const std::vector<std::string>& items) {
    std::string text;
    for (const auto& item : items) text += (text.empty() ? "" : ",") + item;
    return text;
}

TEST_F(OptionTable, EveryOptionHasASampleValue) {
    for (const OptionSpec& spec : option_table()) {
        EXPECT_TRUE(kSamples.count(spec.key)) << "no sample value for " << spec.key;
    }
}

TEST_F(OptionTable, EveryOptionIsReadFromTheCommandLine) {
    for (const OptionSpec& spec : option_table()) {
        if (std::string(spec.key) == "config") continue;  // the file itself (tested below)
        std::string sample = kSamples.at(spec.key);
        Options options = from_command_line({long_option(spec), sample, "--", "app"});
        EXPECT_NE(joined(spec.show(options)), joined(spec.show(defaults()))) << spec.key;
        EXPECT_NE(joined(spec.show(options)).find(sample.substr(0, 3)), std::string::npos)
            << spec.key << ": " << joined(spec.show(options));
    }
}

TEST_F(OptionTable, EveryOptionWithAVariableIsReadFromTheEnvironment) {
    for (const OptionSpec& spec : option_table()) {
        if (spec.environment == nullptr || std::string(spec.key) == "config") continue;
        ::setenv(spec.environment, kSamples.at(spec.key).c_str(), 1);
        Options options = from_command_line({"--", "app"});
        ::unsetenv(spec.environment);
        EXPECT_NE(joined(spec.show(options)), joined(spec.show(defaults()))) << spec.environment;
    }
}

TEST_F(OptionTable, EveryOptionOfTheFileIsReadFromTheFile) {
    for (const OptionSpec& spec : option_table()) {
        if (!spec.in_file) continue;
        std::string sample = kSamples.at(spec.key);
        std::string line;
        switch (spec.shape) {
            case OptionShape::value:
                line = std::string(spec.key) + " = \"" + sample + "\"\n";
                break;
            case OptionShape::list:
                line = std::string(spec.key) + " = [\"" + sample + "\"]\n";
                break;
            case OptionShape::pairs:
                line = "[" + std::string(spec.key) + "]\n" + sample.substr(0, sample.find('=')) +
                       " = \"" + sample.substr(sample.find('=') + 1) + "\"\n";
                break;
        }
        std::string path = config("command = [\"app\"]\n" + line);
        Options options = from_command_line({"--config", path});
        EXPECT_NE(joined(spec.show(options)), joined(spec.show(defaults()))) << line;
    }
}

TEST_F(OptionTable, MemorySizesTakeUnitsOfPowersOf1024) {
    auto limit = [](const std::string& size) {
        return from_command_line({"--worker-memory-limit", size, "--", "app"}).worker_memory_limit;
    };
    EXPECT_EQ(defaults().worker_memory_limit, 0u);
    EXPECT_EQ(limit("512M"), 512ULL << 20);
    EXPECT_EQ(limit("2G"), 2ULL << 30);
    EXPECT_EQ(limit("2g"), 2ULL << 30);
    EXPECT_EQ(limit("4096K"), 4ULL << 20);
    EXPECT_EQ(limit("1048576"), 1ULL << 20);
    EXPECT_EQ(limit("off"), 0u);
    EXPECT_EQ(limit("0"), 0u);
    for (const char* bad : {"", "lots", "12X", "1K", "-5M", "M", "2 G", "99999999T"}) {
        EXPECT_THROW(limit(bad), UsageError) << bad;
    }
}

TEST_F(OptionTable, TheConfigurationFileCannotNameAnotherOne) {
    std::string path = config("command = [\"app\"]\nconfig = \"/other.toml\"\n");
    EXPECT_THROW(from_command_line({"--config", path}), UsageError);
}

TEST_F(OptionTable, TheReloadLogNamesEveryOptionThatChanged) {
    for (const OptionSpec& spec : option_table()) {
        if (std::string(spec.key) == "config") continue;
        Options after = from_command_line({long_option(spec), kSamples.at(spec.key), "--", "app"});
        std::string changes = describe_changes(defaults(), after);
        EXPECT_NE(changes.find(spec.key), std::string::npos) << spec.key << ": " << changes;
    }
}

TEST_F(OptionTable, AReloadKeepsTheOptionsItCannotChange) {
    Options running = defaults();
    for (const OptionSpec& spec : option_table()) {
        if (std::string(spec.key) == "config") continue;
        Options next = from_command_line({long_option(spec), kSamples.at(spec.key), "--", "app"});
        keep_what_a_reload_cannot_change(next, running);
        bool kept = joined(spec.show(next)) == joined(spec.show(running));
        EXPECT_EQ(kept, !spec.reloadable) << spec.key;
    }
}

TEST_F(OptionTable, HelpNamesEveryOptionAndItsVariable) {
    std::string help = usage_text();
    for (const OptionSpec& spec : option_table()) {
        EXPECT_NE(help.find(long_option(spec) + " " + spec.value_name), std::string::npos)
            << spec.key;
        if (spec.environment != nullptr) {
            EXPECT_NE(help.find(std::string("[") + spec.environment + "]"), std::string::npos)
                << spec.environment;
        }
    }
}

// The cells of a Markdown table row ("\|" is a pipe inside a cell).
std::vector<std::string> cells(const std::string& row) {
    std::vector<std::string> out;
    std::string cell;
    for (std::size_t i = 1; i < row.size(); ++i) {
        if (row[i] == '\\' && i + 1 < row.size() && row[i + 1] == '|') {
            cell += '|';
            ++i;
        } else if (row[i] == '|') {
            out.push_back(cell);
            cell.clear();
        } else {
            cell += row[i];
        }
    }
    return out;
}

// The first `code` span of a cell, or "".
std::string code(const std::string& cell) {
    auto start = cell.find('`');
    if (start == std::string::npos) return "";
    return cell.substr(start + 1, cell.find('`', start + 1) - start - 1);
}

std::string unquoted(std::string cell) {
    std::string out;
    for (char c : cell) {
        if (c != '`') out += c;
    }
    auto first = out.find_first_not_of(' ');
    if (first == std::string::npos) return "";
    return out.substr(first, out.find_last_not_of(' ') - first + 1);
}

TEST_F(OptionTable, TheReadmeTableSaysWhatTheDeclarationsSay) {
    std::ifstream readme(std::string(PREFORK_SOURCE_DIR) + "/README.md");
    ASSERT_TRUE(readme) << "README.md not found";
    std::map<std::string, std::vector<std::string>> rows;  // "--workers N" -> its cells
    bool in_table = false;
    for (std::string line; std::getline(readme, line);) {
        if (line == "### Options") in_table = true;
        if (!in_table) continue;
        if (line.starts_with("| `--")) rows[code(cells(line).at(0))] = cells(line);
        if (line.starts_with("Seconds may")) break;
    }
    ASSERT_FALSE(rows.empty());
    for (const OptionSpec& spec : option_table()) {
        std::string name = long_option(spec) + " " + spec.value_name;
        auto row = rows.find(name);
        ASSERT_NE(row, rows.end()) << "no README row for " << name;
        EXPECT_EQ(code(row->second.at(1)), spec.environment ? spec.environment : "") << name;
        EXPECT_EQ(unquoted(row->second.at(2)), spec.default_text) << name;
        rows.erase(row);
    }
    for (const auto& [name, row] : rows) {
        // The actions (run something else than a start) have rows of their own.
        EXPECT_TRUE(name.starts_with("-h") || name.starts_with("--help") || name == "--check")
            << "README row " << name << " is not a declared option";
    }
}

}  // namespace
}  // namespace prefork::master

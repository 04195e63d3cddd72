#include "options.hpp"

#include "cpu_limit.hpp"

#include "config_file.hpp"
#include "option_table.hpp"

#include <prefork/common/control_protocol.hpp>
#include <prefork/common/fd_passing.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace prefork::master {
namespace {

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

Settings read_environment() {
    Settings env;
    for (const OptionSpec& spec : option_table()) {
        if (spec.environment == nullptr) continue;
        const char* value = std::getenv(spec.environment);
        if (value == nullptr || *value == '\0') continue;
        if (spec.shape == OptionShape::value) {
            env.add(spec.key, {value, spec.environment, ""});
            continue;
        }
        for (auto& part : split_commas(value)) env.add(spec.key, {part, spec.environment, ""});
    }
    return env;
}

// The certificate and key, read and checked, when a listener serves TLS.
void load_tls(Options& options) {
    bool serves_tls = std::any_of(options.binds.begin(), options.binds.end(),
                                  [](const ListenAddress& address) { return address.tls; });
    if (!serves_tls) return;
    if (options.tls_cert.empty() || options.tls_key.empty()) {
        throw UsageError(
            "a tls: listener needs a certificate and its key (--tls-cert FILE "
            "--tls-key FILE, or tls_cert and tls_key in the configuration file)");
    }
    try {
        options.tls = std::make_shared<const tls::Credentials>(
            tls::load_credentials(options.tls_cert, options.tls_key, options.tls_ciphers));
    } catch (const tls::CredentialsError& error) {
        throw UsageError(error.what());
    }
    // The workers get them in one control message.
    std::size_t size = control::encode(options.tls->pem).size();
    if (size > kMaxMessageSize) {
        throw UsageError("the certificate chain and key in " + options.tls_cert + " and " +
                         options.tls_key + " take " + std::to_string(size) +
                         " bytes to send to the workers; at most " +
                         std::to_string(kMaxMessageSize) + " fit");
    }
}

}  // namespace

// Turns what was said into checked options, with the defaults for what was not.
Options check_settings(const Settings& said) {
    Options options;
    options.binds.push_back(parse_listen_address("127.0.0.1:8080"));
    WorkerCount count = default_worker_count();
    options.workers = std::min(count.workers, 1024);
    options.workers_source = count.source;
    for (const OptionSpec& spec : option_table()) {
        const std::vector<Setting>* values = said.find(spec.key);
        if (values != nullptr && !values->empty()) spec.apply(options, *values);
    }
    if (!said.command || said.command->empty()) {
        throw UsageError(
            "no worker command given (usage: prefork [OPTIONS] -- WORKER_COMMAND [ARGS...], or "
            "command = [...] in the configuration file)");
    }
    options.command = *said.command;
    load_tls(options);
    return options;
}

namespace {

// "--graceful-timeout" -> its declaration, or null.
const OptionSpec* find_long_option(std::string_view name) {
    for (const OptionSpec& spec : option_table()) {
        if (name == long_option(spec)) return &spec;
    }
    return nullptr;
}

// Wraps `text` into lines of at most `width` characters, each but the first starting
// with `indent` spaces.
std::string wrapped(const std::string& text, std::size_t indent, std::size_t width) {
    std::string out, line;
    std::istringstream words(text);
    for (std::string word; words >> word;) {
        if (!line.empty() && indent + line.size() + 1 + word.size() > width) {
            out += line + "\n" + std::string(indent, ' ');
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
    }
    return out + line;
}

}  // namespace

const std::vector<Setting>* Settings::find(std::string_view key) const {
    auto found = values.find(key);
    return found == values.end() ? nullptr : &found->second;
}

void Settings::fill_from(const Settings& weaker) {
    for (const auto& [key, theirs] : weaker.values) {
        const OptionSpec* spec = find_option(key);
        auto& mine = values[key];
        if (spec != nullptr && spec->shape == OptionShape::pairs) {
            // The weaker source's pairs first: a worker sees the last value of a name.
            mine.insert(mine.begin(), theirs.begin(), theirs.end());
        } else if (mine.empty()) {
            mine = theirs;
        }
    }
    if (!command && weaker.command) command = weaker.command;
}

ParsedCommandLine parse_command_line(int argc, char** argv) {
    ParsedCommandLine parsed;
    Settings& cli = parsed.settings;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            cli.command = std::vector<std::string>(argv + i + 1, argv + argc);
            break;
        }
        if (arg == "-h" || arg == "--help") return {Action::help, {}};
        if (arg == "-V" || arg == "--version") return {Action::version, {}};
        if (arg == "--check") {
            parsed.action = Action::check;
            continue;
        }
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
        const OptionSpec* spec = find_long_option(name);
        if (spec == nullptr) throw UsageError("unknown option " + name + " (see prefork --help)");
        if (!inline_value) {
            if (i + 1 >= argc) throw UsageError("option " + name + " needs a value");
            value = argv[++i];
        }
        if (spec->shape == OptionShape::value) cli.values.erase(spec->key);  // the last wins
        cli.add(spec->key, Setting{value, name, ""});
    }
    if (cli.command && cli.command->empty()) cli.command.reset();
    return parsed;
}

Options resolve_options(const Settings& command_line) {
    return check_settings(gather_settings(command_line));
}

Settings gather_settings(const Settings& command_line) {
    Settings said = command_line;
    Settings environment = read_environment();
    const std::vector<Setting>* config = said.find("config");
    if (config == nullptr) config = environment.find("config");
    if (config != nullptr && !config->empty()) {
        try {
            said.fill_from(read_config_file(config->back().value));
        } catch (const ConfigError& error) {
            throw UsageError(error.what());
        }
    }
    said.fill_from(environment);
    return said;
}

std::string usage_text() {
    constexpr std::size_t kHelpColumn = 28;
    constexpr std::size_t kWidth = 90;
    std::string text = R"(usage: prefork [OPTIONS] -- WORKER_COMMAND [ARGS...]
       prefork --config FILE            (the worker command in the file)

Binds the listening sockets, starts WORKER_COMMAND as worker processes, hands each
worker the sockets, and supervises them.

options (environment variable in brackets; the command line wins over the configuration
file, which wins over the environment):
)";
    for (const OptionSpec& spec : option_table()) {
        std::string name = "  " + long_option(spec) + " " + spec.value_name;
        std::string help = spec.help;
        if (spec.environment != nullptr) help += std::string(" [") + spec.environment + "]";
        if (*spec.default_text != '\0') help += std::string(" (default ") + spec.default_text + ")";
        if (name.size() + 1 > kHelpColumn) {
            text += name + "\n" + std::string(kHelpColumn, ' ');
        } else {
            text += name + std::string(kHelpColumn - name.size(), ' ');
        }
        text += wrapped(help, kHelpColumn, kWidth) + "\n";
    }
    text +=
        R"(  --check                   check the options, the environment, the configuration file and
                            the worker command as a start would, bind nothing, and exit
                            (0: valid; 2 and one line on stderr: why not)
  -h, --help                print this help
  -V, --version             print the version

signals: TERM/INT stop gracefully (a second one stops at once), QUIT stops at once,
HUP reloads (re-reads the configuration, replaces every worker, fails no request),
TTIN/TTOU add/remove a worker, USR1 reopens the access log, USR2 upgrades prefork in
place (checks the binary at the path it was started from, re-executes it with the same
pid and sockets, then replaces the workers), CHLD reaps (prefork is a child subreaper).
)";
    return text;
}

}  // namespace prefork::master

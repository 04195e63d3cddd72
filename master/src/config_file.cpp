#include "config_file.hpp"

#include <toml++/toml.h>

#include <cmath>
#include <functional>
#include <map>
#include <sstream>

namespace prefork::master {
namespace {

std::string location(const std::string& path, const toml::node& node) {
    return path + ":" + std::to_string(node.source().begin.line);
}

[[noreturn]] void fail(const std::string& path, const toml::node& node,
                       const std::string& problem) {
    throw ConfigError(location(path, node) + ": " + problem);
}

// Numbers and strings become the text the command line would have carried.
Setting scalar(const std::string& path, std::string_view key, const toml::node& node) {
    Setting setting{"", std::string(key), location(path, node)};
    if (auto text = node.value<std::string>(); text && node.is_string()) {
        setting.value = *text;
    } else if (node.is_integer()) {
        setting.value = std::to_string(*node.value<std::int64_t>());
    } else if (node.is_floating_point()) {
        std::ostringstream out;
        out << *node.value<double>();
        setting.value = out.str();
    } else {
        fail(path, node, std::string(key) + " must be a number or a string");
    }
    return setting;
}

std::vector<std::string> strings(const std::string& path, std::string_view key,
                                 const toml::node& node) {
    const toml::array* array = node.as_array();
    if (array == nullptr) fail(path, node, std::string(key) + " must be an array of strings");
    std::vector<std::string> values;
    for (const toml::node& element : *array) {
        auto text = element.value<std::string>();
        if (!element.is_string() || !text)
            fail(path, element, std::string(key) + " must hold strings only");
        values.push_back(*text);
    }
    return values;
}

}  // namespace

Settings read_config_file(const std::string& path) {
    toml::table table;
    try {
        table = toml::parse_file(path);
    } catch (const toml::parse_error& error) {
        const auto& where = error.source().begin;
        if (where.line == 0) throw ConfigError(path + ": " + std::string(error.description()));
        throw ConfigError(path + ":" + std::to_string(where.line) + ": " +
                          std::string(error.description()));
    }

    Settings settings;
    using Reader = std::function<void(std::string_view, const toml::node&)>;
    auto into = [&](std::optional<Setting>& field) -> Reader {
        return [&, field_ptr = &field](std::string_view key, const toml::node& node) {
            *field_ptr = scalar(path, key, node);
        };
    };
    const std::map<std::string, Reader, std::less<>> readers = {
        {"workers", into(settings.workers)},
        {"timeout", into(settings.timeout)},
        {"graceful_timeout", into(settings.graceful_timeout)},
        {"shutdown_delay", into(settings.shutdown_delay)},
        {"max_requests", into(settings.max_requests)},
        {"max_requests_jitter", into(settings.max_requests_jitter)},
        {"pid_file", into(settings.pid_file)},
        {"log_format", into(settings.log_format)},
        {"log_level", into(settings.log_level)},
        {"admin", into(settings.admin)},
        {"access_log", into(settings.access_log)},
        {"bind",
         [&](std::string_view key, const toml::node& node) {
             std::vector<Setting> binds;
             for (auto& address : strings(path, key, node)) {
                 binds.push_back({address, "bind", location(path, node)});
             }
             settings.binds = std::move(binds);
         }},
        {"command",
         [&](std::string_view key, const toml::node& node) {
             settings.command = strings(path, key, node);
             if (settings.command->empty()) fail(path, node, "command must not be empty");
         }},
        {"env",
         [&](std::string_view, const toml::node& node) {
             const toml::table* env = node.as_table();
             if (env == nullptr) fail(path, node, "env must be a table of NAME = \"value\"");
             for (const auto& [name, value] : *env) {
                 auto text = value.value<std::string>();
                 if (!value.is_string() || !text) {
                     fail(path, value, "env." + std::string(name.str()) + " must be a string");
                 }
                 settings.env.push_back(
                     {std::string(name.str()) + "=" + *text, "env", location(path, value)});
             }
         }},
    };
    for (const auto& [key, node] : table) {
        auto reader = readers.find(key.str());
        if (reader == readers.end())
            fail(path, node, "unknown key \"" + std::string(key.str()) + "\"");
        reader->second(key.str(), node);
    }
    return settings;
}

}  // namespace prefork::master

#include "config_file.hpp"

#include "option_table.hpp"

#include <toml++/toml.h>

#include <cmath>
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

// [env]  NAME = "value"
void read_pairs(const std::string& path, const OptionSpec& spec, const toml::node& node,
                Settings& settings) {
    const toml::table* pairs = node.as_table();
    if (pairs == nullptr) {
        fail(path, node, std::string(spec.key) + " must be a table of NAME = \"value\"");
    }
    for (const auto& [name, value] : *pairs) {
        auto text = value.value<std::string>();
        if (!value.is_string() || !text) {
            fail(path, value,
                 std::string(spec.key) + "." + std::string(name.str()) + " must be a string");
        }
        settings.add(spec.key,
                     {std::string(name.str()) + "=" + *text, spec.key, location(path, value)});
    }
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
    for (const auto& [key, node] : table) {
        if (key.str() == "command") {
            settings.command = strings(path, key.str(), node);
            if (settings.command->empty()) fail(path, node, "command must not be empty");
            continue;
        }
        const OptionSpec* spec = find_option(key.str());
        if (spec == nullptr || !spec->in_file) {
            fail(path, node, "unknown key \"" + std::string(key.str()) + "\"");
        }
        switch (spec->shape) {
            case OptionShape::value:
                settings.add(spec->key, scalar(path, key.str(), node));
                break;
            case OptionShape::list:
                for (auto& item : strings(path, key.str(), node)) {
                    settings.add(spec->key, {item, spec->key, location(path, node)});
                }
                break;
            case OptionShape::pairs:
                read_pairs(path, *spec, node, settings);
                break;
        }
    }
    return settings;
}

}  // namespace prefork::master

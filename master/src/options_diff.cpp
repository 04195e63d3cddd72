#include "options_diff.hpp"

#include <algorithm>

namespace prefork::master {
namespace {

std::string seconds(std::chrono::milliseconds ms) {
    auto text = std::to_string(ms.count() / 1000.0);
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
    return text + "s";
}

bool contains(const std::vector<ListenAddress>& list, const ListenAddress& address) {
    return std::find(list.begin(), list.end(), address) != list.end();
}

}  // namespace

std::string describe_changes(const Options& before, const Options& after) {
    std::vector<std::string> changes;
    auto changed = [&](const std::string& what, const std::string& from, const std::string& to) {
        if (from != to) changes.push_back(what + " " + from + " -> " + to);
    };
    changed("workers", std::to_string(before.workers), std::to_string(after.workers));
    for (const auto& address : after.binds) {
        if (!contains(before.binds, address)) changes.push_back("bind +" + address.to_string());
    }
    for (const auto& address : before.binds) {
        if (!contains(after.binds, address)) changes.push_back("bind -" + address.to_string());
    }
    changed("timeout", seconds(before.timeout), seconds(after.timeout));
    changed("graceful_timeout", seconds(before.graceful_timeout), seconds(after.graceful_timeout));
    changed("max_requests", std::to_string(before.max_requests),
            std::to_string(after.max_requests));
    changed("max_requests_jitter", std::to_string(before.max_requests_jitter),
            std::to_string(after.max_requests_jitter));
    changed("log_level", log::level_name(before.log_level), log::level_name(after.log_level));
    auto admin = [](const Options& options) {
        return options.admin ? options.admin->to_string() : std::string("off");
    };
    changed("admin", admin(before), admin(after));
    if (before.worker_env != after.worker_env) changes.push_back("env");
    if (before.command != after.command) changes.push_back("command");

    if (changes.empty()) return "no configuration change";
    std::string text;
    for (const auto& change : changes) text += (text.empty() ? "" : ", ") + change;
    return text;
}

}  // namespace prefork::master

#include "options_diff.hpp"

#include "option_table.hpp"

#include <algorithm>

namespace prefork::master {
namespace {

bool contains(const std::vector<std::string>& list, const std::string& item) {
    return std::find(list.begin(), list.end(), item) != list.end();
}

}  // namespace

std::string describe_changes(const Options& before, const Options& after) {
    std::vector<std::string> changes;
    for (const OptionSpec& spec : option_table()) {
        std::vector<std::string> from = spec.show(before), to = spec.show(after);
        if (from == to) continue;
        switch (spec.shape) {
            case OptionShape::value:
                changes.push_back(std::string(spec.key) + " " + from.front() + " -> " + to.front() +
                                  (spec.reloadable ? "" : " (takes effect at a restart)"));
                break;
            case OptionShape::list:
                for (const auto& item : to) {
                    if (!contains(from, item))
                        changes.push_back(std::string(spec.key) + " +" + item);
                }
                for (const auto& item : from) {
                    if (!contains(to, item)) changes.push_back(std::string(spec.key) + " -" + item);
                }
                break;
            case OptionShape::pairs:  // values may be secrets: the names only
                changes.push_back(spec.key);
                break;
        }
    }
    if (before.command != after.command) changes.push_back("command");
    // The same files may hold a new certificate: it is the serial that tells.
    std::string serial_before = before.tls ? before.tls->certificate.serial : "";
    std::string serial_after = after.tls ? after.tls->certificate.serial : "";
    if (serial_before != serial_after && !serial_after.empty()) {
        changes.push_back("certificate serial " + (serial_before.empty() ? "none" : serial_before) +
                          " -> " + serial_after);
    }

    if (changes.empty()) return "no configuration change";
    std::string text;
    for (const auto& change : changes) text += (text.empty() ? "" : ", ") + change;
    return text;
}

void keep_what_a_reload_cannot_change(Options& next, const Options& running) {
    for (const OptionSpec& spec : option_table()) {
        if (!spec.reloadable) spec.keep(next, running);
    }
}

}  // namespace prefork::master

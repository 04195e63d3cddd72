#include "requests_in_flight.hpp"

namespace prefork {
namespace {

in_flight::Table table;

}  // namespace

void InFlightEntry::begin(std::chrono::steady_clock::time_point started, std::string_view method,
                          std::string_view target) {
    // steady_clock is CLOCK_MONOTONIC on Linux, which the master reads too.
    record_.started_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(started.time_since_epoch()).count();
    record_.method = method.data();
    record_.method_size = method.size();
    record_.target = target.data();
    record_.target_size = target.size();
    if (listed_) return;
    record_.previous = nullptr;
    record_.next = table.first;
    if (table.first != nullptr) table.first->previous = &record_;
    table.first = &record_;
    ++table.count;
    listed_ = true;
}

void InFlightEntry::end() {
    if (!listed_) return;
    if (record_.previous != nullptr) {
        record_.previous->next = record_.next;
    } else {
        table.first = record_.next;
    }
    if (record_.next != nullptr) record_.next->previous = record_.previous;
    --table.count;
    listed_ = false;
}

const in_flight::Table& requests_in_flight() {
    return table;
}

}  // namespace prefork

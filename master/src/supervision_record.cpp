#include "supervision_record.hpp"

#include <prefork/common/log.hpp>
#include <prefork/common/log_output.hpp>

namespace prefork::master {

void SupervisionRecord::worker_exited(const control::WorkerCounters& last, const std::string& cause,
                                      int slot) {
    control::WorkerCounters counted = last;
    counted.active_connections = 0;
    exited_totals_.add(counted);
    exited_slots_[slot].connections_accepted += last.connections_accepted;
    exited_slots_[slot].requests += last.requests;
    ++worker_exits_[cause];
}

void SupervisionRecord::event(std::string text) {
    events_.push_back({log::timestamp(), std::move(text)});
    if (events_.size() > kRecentEvents) events_.pop_front();
}

void SupervisionRecord::fill(StatusReport& report) const {
    report.totals = exited_totals_;
    report.slots = exited_slots_;
    report.worker_starts = worker_starts_;
    report.worker_exits = worker_exits_;
    report.reloads = reloads_;
    report.reload_failures = reload_failures_;
    report.log_lines_dropped = log::dropped_line_count();
    report.events.assign(events_.begin(), events_.end());
}

}  // namespace prefork::master

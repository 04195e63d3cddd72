#pragma once

#include "status_report.hpp"

#include <prefork/common/control_protocol.hpp>

#include <boost/json/object.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <string>

namespace prefork::master {

// What the supervisor has done and seen, for the admin endpoint: counters that never go
// backwards (the totals of the workers that have exited are kept) and the recent events.
class SupervisionRecord {
  public:
    void worker_started() { ++worker_starts_; }
    // A worker has exited: its last counters join the totals (and its slot's), counted
    // under `cause`.
    void worker_exited(const control::WorkerCounters& last, const std::string& cause, int slot = 0);
    void reload_started() { ++reloads_; }
    void reload_failed() { ++reload_failures_; }
    // Something an operator should see on /status (the last 20 are kept).
    void event(std::string text);

    // Fills the report's counters and events (its workers are the supervisor's to add).
    void fill(StatusReport& report) const;

    // Everything, as it crosses an upgrade's exec; restore throws upgrade::StateError.
    boost::json::object save() const;
    void restore(const boost::json::object& saved);

  private:
    static constexpr std::size_t kRecentEvents = 20;

    control::WorkerCounters exited_totals_;
    std::map<int, StatusReport::Slot> exited_slots_;
    std::uint64_t worker_starts_ = 0;
    std::map<std::string, std::uint64_t> worker_exits_;
    std::uint64_t reloads_ = 0;
    std::uint64_t reload_failures_ = 0;
    std::deque<StatusReport::Event> events_;
};

}  // namespace prefork::master

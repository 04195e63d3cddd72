#include "supervision_record.hpp"

#include "upgrade_state.hpp"

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

boost::json::object SupervisionRecord::save() const {
    boost::json::array slots, events;
    for (const auto& [slot, counts] : exited_slots_) {
        slots.push_back(boost::json::array{slot, counts.connections_accepted, counts.requests});
    }
    for (const auto& event : events_) events.push_back(boost::json::array{event.time, event.text});
    boost::json::object exits;
    for (const auto& [cause, count] : worker_exits_) exits[cause] = count;
    return {{"exited_totals", upgrade::to_json(exited_totals_)},
            {"exited_slots", std::move(slots)},
            {"worker_starts", worker_starts_},
            {"worker_exits", std::move(exits)},
            {"reloads", reloads_},
            {"reload_failures", reload_failures_},
            {"events", std::move(events)}};
}

void SupervisionRecord::restore(const boost::json::object& saved) {
    using namespace upgrade;
    exited_totals_ = counters_from_json(boost::json::value(object_at(saved, "exited_totals")));
    for (const auto& entry : array_at(saved, "exited_slots")) {
        const boost::json::array* slot = entry.if_array();
        if (slot == nullptr || slot->size() != 3) throw StateError("a slot's totals");
        boost::json::object fields{{"slot", (*slot)[0]}, {"c", (*slot)[1]}, {"r", (*slot)[2]}};
        exited_slots_[static_cast<int>(int_at(fields, "slot"))] = {uint_at(fields, "c"),
                                                                   uint_at(fields, "r")};
    }
    worker_starts_ = uint_at(saved, "worker_starts");
    for (const auto& [cause, count] : object_at(saved, "worker_exits")) {
        boost::json::object field{{"n", count}};
        worker_exits_[std::string(cause)] = uint_at(field, "n");
    }
    reloads_ = uint_at(saved, "reloads");
    reload_failures_ = uint_at(saved, "reload_failures");
    for (const auto& entry : array_at(saved, "events")) {
        const boost::json::array* event = entry.if_array();
        if (event == nullptr || event->size() != 2 || !(*event)[0].is_string() ||
            !(*event)[1].is_string()) {
            throw StateError("an event");
        }
        events_.push_back(
            {std::string((*event)[0].get_string()), std::string((*event)[1].get_string())});
    }
}

}  // namespace prefork::master

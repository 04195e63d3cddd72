#include "supervision_record.hpp"

#include <gtest/gtest.h>

namespace prefork::master {
namespace {

TEST(SupervisionRecord, TheTotalsOfExitedWorkersNeverGoBackwards) {
    SupervisionRecord record;
    control::WorkerCounters last;
    last.requests = 10;
    last.active_connections = 3;  // gone with the worker
    last.responses[1] = 9;
    record.worker_started();
    record.worker_started();
    record.worker_exited(last, "crash");
    record.worker_exited(last, "reload");
    record.worker_exited(last, "reload");

    StatusReport report;
    record.fill(report);
    EXPECT_EQ(report.totals.requests, 30u);
    EXPECT_EQ(report.totals.responses[1], 27u);
    EXPECT_EQ(report.totals.active_connections, 0u);
    EXPECT_EQ(report.worker_starts, 2u);
    EXPECT_EQ(report.worker_exits.at("crash"), 1u);
    EXPECT_EQ(report.worker_exits.at("reload"), 2u);
}

TEST(SupervisionRecord, ASlotKeepsTheCountsOfTheWorkersThatHeldItBefore) {
    SupervisionRecord record;
    control::WorkerCounters last;
    last.requests = 7;
    last.connections_accepted = 3;
    record.worker_exited(last, "recycle", 1);
    record.worker_exited(last, "recycle", 1);
    record.worker_exited(last, "crash", 0);
    StatusReport report;
    record.fill(report);
    ASSERT_EQ(report.slots.size(), 2u);
    EXPECT_EQ(report.slots.at(1).requests, 14u);
    EXPECT_EQ(report.slots.at(1).connections_accepted, 6u);
    EXPECT_EQ(report.slots.at(0).requests, 7u);
}

TEST(SupervisionRecord, ReloadsAndFailuresAreCountedApart) {
    SupervisionRecord record;
    record.reload_started();
    record.reload_started();
    record.reload_failed();
    StatusReport report;
    record.fill(report);
    EXPECT_EQ(report.reloads, 2u);
    EXPECT_EQ(report.reload_failures, 1u);
}

TEST(SupervisionRecord, KeepsTheLastTwentyEventsOldestFirst) {
    SupervisionRecord record;
    for (int i = 0; i < 25; ++i) record.event("event " + std::to_string(i));
    StatusReport report;
    record.fill(report);
    ASSERT_EQ(report.events.size(), 20u);
    EXPECT_EQ(report.events.front().text, "event 5");
    EXPECT_EQ(report.events.back().text, "event 24");
    EXPECT_FALSE(report.events.back().time.empty());
}

}  // namespace
}  // namespace prefork::master

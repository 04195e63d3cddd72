#include "crash_loop_guard.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace prefork::master {
namespace {

using namespace std::chrono_literals;
using Clock = CrashLoopGuard::Clock;

// A moment `offset` after an arbitrary origin: the guard only compares time points.
Clock::time_point at(Clock::duration offset) {
    return Clock::time_point{} + std::chrono::hours(1) + offset;
}

TEST(CrashLoopGuard, BackoffStartsAtAQuarterSecondAndDoublesUpToSixteenSeconds) {
    CrashLoopGuard guard;
    guard.note_ready();
    const Clock::duration expected[] = {250ms, 500ms, 1s, 2s, 4s, 8s, 16s, 16s, 16s};
    int in_a_row = 0;
    for (Clock::duration backoff : expected) {
        auto verdict = guard.note_failed_start(at(10s));
        EXPECT_FALSE(verdict.give_up);
        EXPECT_EQ(verdict.backoff, backoff) << "failure " << in_a_row + 1;
        EXPECT_EQ(verdict.in_a_row, ++in_a_row);
        EXPECT_EQ(guard.failures_in_a_row(), in_a_row);
    }
    // Long past the point where doubling would overflow the shift, still 16 s.
    for (int i = 0; i < 40; ++i) {
        EXPECT_EQ(guard.note_failed_start(at(10s)).backoff, Clock::duration(16s));
    }
}

TEST(CrashLoopGuard, AFreshGuardMayStartAtOnce) {
    CrashLoopGuard guard;
    EXPECT_TRUE(guard.may_start(at(0s)));
    EXPECT_EQ(guard.failures_in_a_row(), 0);
    EXPECT_FALSE(guard.any_ready());
}

TEST(CrashLoopGuard, MayNotStartBeforeTheBackoffHasPassed) {
    CrashLoopGuard guard;
    guard.note_ready();
    auto failed_at = at(10s);
    auto verdict = guard.note_failed_start(failed_at);
    EXPECT_EQ(guard.next_start_at(), failed_at + verdict.backoff);
    EXPECT_FALSE(guard.may_start(failed_at));
    EXPECT_FALSE(guard.may_start(failed_at + 249ms));
    EXPECT_TRUE(guard.may_start(failed_at + 250ms));
    EXPECT_TRUE(guard.may_start(failed_at + 1h));

    auto second = guard.note_failed_start(failed_at + 250ms);
    EXPECT_EQ(second.backoff, Clock::duration(500ms));
    EXPECT_FALSE(guard.may_start(failed_at + 250ms + 499ms));
    EXPECT_TRUE(guard.may_start(failed_at + 250ms + 500ms));
}

TEST(CrashLoopGuard, GivesUpAfterThreeFailedStartsWhenNoWorkerWasEverReady) {
    CrashLoopGuard guard;
    for (int attempt = 1; attempt < CrashLoopGuard::kStartAttempts; ++attempt) {
        auto verdict = guard.note_failed_start(at(attempt * 1s));
        EXPECT_FALSE(verdict.give_up) << "attempt " << attempt;
        EXPECT_EQ(verdict.in_a_row, attempt);
    }
    auto verdict = guard.note_failed_start(at(10s));
    EXPECT_TRUE(verdict.give_up);
    EXPECT_EQ(verdict.in_a_row, CrashLoopGuard::kStartAttempts);
}

TEST(CrashLoopGuard, NeverGivesUpOnceAWorkerWasReady) {
    CrashLoopGuard guard;
    for (int attempt = 1; attempt < CrashLoopGuard::kStartAttempts; ++attempt) {
        EXPECT_FALSE(guard.note_failed_start(at(attempt * 1s)).give_up);
    }
    guard.note_ready();
    EXPECT_TRUE(guard.any_ready());
    for (int attempt = 0; attempt < 100; ++attempt) {
        auto verdict = guard.note_failed_start(at(10s + attempt * 20s));
        EXPECT_FALSE(verdict.give_up) << "failure " << attempt << " after a ready worker";
        EXPECT_GT(verdict.backoff, Clock::duration::zero());
    }
}

TEST(CrashLoopGuard, AWorkerStartedAfterTheLastFailureThatOutlivesAQuickDeathEndsTheRun) {
    CrashLoopGuard guard;
    guard.note_ready();
    guard.note_failed_start(at(10s));
    guard.note_failed_start(at(11s));
    ASSERT_EQ(guard.failures_in_a_row(), 2);

    guard.note_alive(at(12s), at(12s) + CrashLoopGuard::kQuickDeath + 1ms);
    EXPECT_EQ(guard.failures_in_a_row(), 0);
    auto verdict = guard.note_failed_start(at(30s));
    EXPECT_EQ(verdict.backoff, Clock::duration(250ms)) << "the backoff starts over";
    EXPECT_EQ(verdict.in_a_row, 1);
}

TEST(CrashLoopGuard, AWorkerNotYetPastAQuickDeathDoesNotEndTheRun) {
    CrashLoopGuard guard;
    guard.note_ready();
    guard.note_failed_start(at(10s));
    guard.note_failed_start(at(11s));

    guard.note_alive(at(12s), at(13s));
    EXPECT_EQ(guard.failures_in_a_row(), 2);
    guard.note_alive(at(12s), at(12s) + CrashLoopGuard::kQuickDeath);  // not more than
    EXPECT_EQ(guard.failures_in_a_row(), 2);
    EXPECT_EQ(guard.note_failed_start(at(20s)).backoff, Clock::duration(1s));
}

TEST(CrashLoopGuard, AWorkerStartedBeforeTheLastFailureDoesNotEndTheRun) {
    CrashLoopGuard guard;
    guard.note_ready();
    guard.note_failed_start(at(10s));
    guard.note_failed_start(at(11s));

    // Up long before the failures, and long enough: it says nothing about the new starts.
    guard.note_alive(at(1s), at(60s));
    EXPECT_EQ(guard.failures_in_a_row(), 2);
    guard.note_alive(at(11s), at(60s));  // started at the very moment of the last failure
    EXPECT_EQ(guard.failures_in_a_row(), 2);
    EXPECT_EQ(guard.note_failed_start(at(61s)).backoff, Clock::duration(1s));
}

TEST(CrashLoopGuard, ResetLetsTheNextStartHappenAtOnce) {
    CrashLoopGuard guard;
    guard.note_ready();
    for (int i = 0; i < 6; ++i) guard.note_failed_start(at(10s));
    ASSERT_FALSE(guard.may_start(at(10s)));

    guard.reset();
    EXPECT_TRUE(guard.may_start(at(10s)));
    EXPECT_EQ(guard.failures_in_a_row(), 0);
    EXPECT_EQ(guard.note_failed_start(at(10s)).backoff, Clock::duration(250ms));
}

TEST(CrashLoopGuard, AWorkerThatDiedBeforeItWasReadyFailedToStart) {
    EXPECT_TRUE(CrashLoopGuard::is_failed_start(false, false, 0s));
    EXPECT_TRUE(CrashLoopGuard::is_failed_start(false, false, 1h));
    EXPECT_TRUE(CrashLoopGuard::is_failed_start(false, true, 1h));
}

TEST(CrashLoopGuard, AWorkerThatDiedServingDidNotFailToStartHoweverQuickly) {
    EXPECT_FALSE(CrashLoopGuard::is_failed_start(true, true, 0s));
    EXPECT_FALSE(CrashLoopGuard::is_failed_start(true, true, 10ms));
    EXPECT_FALSE(CrashLoopGuard::is_failed_start(true, true, 1h));
}

TEST(CrashLoopGuard, AReadyWorkerThatDiedQuicklyWithoutTrafficFailedToStart) {
    EXPECT_TRUE(CrashLoopGuard::is_failed_start(true, false, 0s));
    EXPECT_TRUE(CrashLoopGuard::is_failed_start(true, false, CrashLoopGuard::kQuickDeath - 1ms));
}

TEST(CrashLoopGuard, AReadyWorkerThatLivedFiveSecondsWithoutTrafficDidNotFailToStart) {
    EXPECT_FALSE(CrashLoopGuard::is_failed_start(true, false, CrashLoopGuard::kQuickDeath));
    EXPECT_FALSE(CrashLoopGuard::is_failed_start(true, false, 1h));
}

}  // namespace
}  // namespace prefork::master

#include "crash_loop_guard.hpp"

#include <algorithm>

namespace prefork::master {

bool CrashLoopGuard::is_failed_start(bool was_ready, bool had_traffic, Clock::duration lived) {
    if (!was_ready) return true;
    return !had_traffic && lived < kQuickDeath;
}

CrashLoopGuard::Verdict CrashLoopGuard::note_failed_start(Clock::time_point now) {
    Verdict verdict;
    if (!any_ready_ && ++failures_before_ready_ >= kStartAttempts) {
        verdict.give_up = true;
        verdict.in_a_row = failures_before_ready_;
        return verdict;
    }
    ++in_a_row_;
    last_failure_at_ = now;
    Clock::duration backoff = kFirstBackoff * (1 << std::min(in_a_row_ - 1, 10));
    verdict.backoff = std::min<Clock::duration>(backoff, kMaxBackoff);
    verdict.in_a_row = in_a_row_;
    next_start_at_ = now + verdict.backoff;
    return verdict;
}

void CrashLoopGuard::note_alive(Clock::time_point started_at, Clock::time_point now) {
    if (in_a_row_ > 0 && started_at > last_failure_at_ && now - started_at > kQuickDeath) {
        in_a_row_ = 0;
    }
}

void CrashLoopGuard::reset() {
    in_a_row_ = 0;
    next_start_at_ = {};
}

}  // namespace prefork::master

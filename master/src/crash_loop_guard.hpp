#pragma once

#include <chrono>
#include <string>

namespace prefork::master {

// Spaces out the starts of workers while starting them keeps failing, and gives up on a
// worker command that has never produced a ready worker. A failed start is a worker that
// could not be launched, died before it was ready, or died soon after without having been
// sent any traffic. A worker that dies while serving is not one: a request that crashes
// its worker must not cost the service its capacity (an attacker could repeat it), so its
// replacement starts at once.
class CrashLoopGuard {
  public:
    using Clock = std::chrono::steady_clock;

    // What follows a failed start.
    struct Verdict {
        bool give_up = false;       // the command never produced a ready worker: stop
        Clock::duration backoff{};  // otherwise: no worker starts before this has passed
        int in_a_row = 0;           // failed starts since the last worker that stayed up
    };

    // A worker that dies this soon after starting, without traffic, failed to start.
    static constexpr auto kQuickDeath = std::chrono::seconds(5);
    // Failed starts before any worker was ready that make prefork give up on the command.
    static constexpr int kStartAttempts = 3;

    // Whether a worker that died failed to start (see above).
    static bool is_failed_start(bool was_ready, bool had_traffic, Clock::duration lived);

    Verdict note_failed_start(Clock::time_point now);
    // A worker said it is ready.
    void note_ready() { any_ready_ = true; }
    // A ready worker that started at `started_at` is still up at `now`: once one has
    // outlived kQuickDeath since the last failure, the crash loop is over.
    void note_alive(Clock::time_point started_at, Clock::time_point now);
    // A reload: the new generation starts without waiting.
    void reset();

    bool any_ready() const { return any_ready_; }
    bool may_start(Clock::time_point now) const { return now >= next_start_at_; }
    Clock::time_point next_start_at() const { return next_start_at_; }
    int failures_in_a_row() const { return in_a_row_; }

  private:
    static constexpr auto kFirstBackoff = std::chrono::milliseconds(250);
    static constexpr auto kMaxBackoff = std::chrono::seconds(16);

    bool any_ready_ = false;
    int failures_before_ready_ = 0;
    int in_a_row_ = 0;
    Clock::time_point next_start_at_{};
    Clock::time_point last_failure_at_{};
};

}  // namespace prefork::master

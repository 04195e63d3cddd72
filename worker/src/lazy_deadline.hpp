#pragma once

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <utility>

namespace prefork {

// A deadline that moves often and expires rarely (a connection's: every request moves it
// later), kept lazily on one timer: at most one wait is outstanding, moving the deadline
// later only records it (the wait, when it ends, waits again for what is left), and only
// a deadline earlier than the outstanding wait restarts the timer.
//
//   if (deadline.set(after)) start_wait();          // start_wait: deadline.wait(handler)
//   handler(ec): switch (deadline.on_wait_done(ec)) { expired: act; wait_again: start_wait(); }
class LazyDeadline {
  public:
    using Clock = std::chrono::steady_clock;
    using Timer = boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>,
                                                    boost::asio::io_context::executor_type>;
    enum class Outcome { expired, wait_again, nothing };

    explicit LazyDeadline(boost::asio::io_context& io) : timer_(io) {}

    // The deadline is `after` from now. True when a wait must be started (wait()): none is
    // outstanding, or the outstanding one ends later than the new deadline.
    bool set(std::chrono::milliseconds after) {
        deadline_ = Clock::now() + after;
        return waits_ == 0 || timer_.expiry() > deadline_;
    }
    // No deadline (an outstanding wait will end with nothing to do).
    void clear() { deadline_ = Clock::time_point::max(); }
    bool armed() const { return deadline_ != Clock::time_point::max(); }

    // Waits until the deadline; `handler(error_code)` must call on_wait_done. A wait that
    // was outstanding ends with operation_aborted.
    template <class Handler>
    void wait(Handler&& handler) {
        timer_.expires_at(deadline_);
        ++waits_;
        timer_.async_wait(std::forward<Handler>(handler));
    }

    // What a wait's end means: the deadline has passed (and is cleared), it was moved later
    // (wait again), or nothing (an older wait, a cancelled one, no deadline any more).
    Outcome on_wait_done(boost::system::error_code ec) {
        --waits_;
        if (ec || waits_ > 0 || !armed()) return Outcome::nothing;
        if (Clock::now() < deadline_) return Outcome::wait_again;
        clear();
        return Outcome::expired;
    }

    // Ends every wait (they complete with operation_aborted).
    void cancel() {
        clear();
        timer_.cancel();
    }

    int outstanding_waits() const { return waits_; }

  private:
    Timer timer_;
    Clock::time_point deadline_ = Clock::time_point::max();
    int waits_ = 0;
};

}  // namespace prefork

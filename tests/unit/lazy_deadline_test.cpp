#include "lazy_deadline.hpp"

#include <gtest/gtest.h>

namespace prefork {
namespace {

using namespace std::chrono_literals;

// A deadline on an io_context, and what its waits did.
struct Watched {
    boost::asio::io_context io;
    LazyDeadline deadline{io};
    int expired = 0;
    LazyDeadline::Clock::time_point expired_at{};

    void start_wait() {
        deadline.wait([this](boost::system::error_code ec) {
            switch (deadline.on_wait_done(ec)) {
                case LazyDeadline::Outcome::expired:
                    ++expired;
                    expired_at = LazyDeadline::Clock::now();
                    return;
                case LazyDeadline::Outcome::wait_again:
                    return start_wait();
                case LazyDeadline::Outcome::nothing:
                    return;
            }
        });
    }
    void set(std::chrono::milliseconds after) {
        if (deadline.set(after)) start_wait();
    }
};

TEST(LazyDeadline, ExpiresOnceWhenItsTimeHasPassed) {
    Watched w;
    auto start = LazyDeadline::Clock::now();
    w.set(30ms);
    w.io.run_for(5s);
    EXPECT_EQ(w.expired, 1);
    EXPECT_GE(w.expired_at - start, 30ms);
    EXPECT_FALSE(w.deadline.armed());
}

TEST(LazyDeadline, MovingItLaterKeepsOneWaitAndExpiresAtTheLaterTime) {
    Watched w;
    auto start = LazyDeadline::Clock::now();
    w.set(30ms);
    for (int i = 0; i < 100; ++i) w.set(80ms);  // as every request of a connection does
    EXPECT_EQ(w.deadline.outstanding_waits(), 1);
    w.io.run_for(5s);
    EXPECT_EQ(w.expired, 1);
    EXPECT_GE(w.expired_at - start, 80ms);
}

TEST(LazyDeadline, MovingItEarlierRestartsTheWait) {
    Watched w;
    auto start = LazyDeadline::Clock::now();
    w.set(10s);
    w.set(30ms);
    w.io.run_for(5s);
    EXPECT_EQ(w.expired, 1) << "the earlier deadline was not kept";
    EXPECT_LT(w.expired_at - start, 5s);
}

TEST(LazyDeadline, ClearedItNeverExpires) {
    Watched w;
    w.set(20ms);
    w.deadline.clear();
    w.io.run_for(200ms);
    EXPECT_EQ(w.expired, 0);
    EXPECT_EQ(w.deadline.outstanding_waits(), 0);
}

TEST(LazyDeadline, CancelledItsWaitsEndWithNothingToDo) {
    Watched w;
    w.set(10s);
    w.deadline.cancel();
    w.io.run_for(1s);
    EXPECT_EQ(w.expired, 0);
    EXPECT_EQ(w.deadline.outstanding_waits(), 0);
}

}  // namespace
}  // namespace prefork

#include <prefork/responder.hpp>

#include "pending_response.hpp"

#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <thread>

namespace prefork {
namespace {

// A response no connection waits for (the connection is never there): what the Responder
// and the connection share, with the loop an io_context the test runs.
struct ResponderUnderTest {
    boost::asio::io_context io;
    std::shared_ptr<detail::PendingResponse> pending = make_pending(io);
    Responder responder{pending};
    int disconnects = 0;

    static std::shared_ptr<detail::PendingResponse> make_pending(boost::asio::io_context& io) {
        auto pending = std::make_shared<detail::PendingResponse>();
        pending->loop = io.get_executor();
        pending->loop_thread = std::this_thread::get_id();
        pending->request_id = 1;
        return pending;
    }

    void count_disconnects() {
        responder.on_disconnect([this] { ++disconnects; });
    }
    // What the connection does when the client leaves, then whatever that posted.
    void client_leaves() {
        pending->abandon();
        run_loop();
    }
    void run_loop() {
        io.restart();
        io.run();
    }
};

TEST(Responder, OnDisconnectDoesNotRunWhenTheClientLeavesAfterSend) {
    ResponderUnderTest test;
    test.count_disconnects();
    ASSERT_TRUE(test.responder.send(Response::text("done")));

    test.client_leaves();
    EXPECT_EQ(test.disconnects, 0) << "the handler was told of a departure after it was done";
}

TEST(Responder, OnDisconnectRunsOnceWhenTheClientLeavesBeforeSend) {
    ResponderUnderTest test;
    test.count_disconnects();

    test.client_leaves();
    EXPECT_EQ(test.disconnects, 1);
    test.client_leaves();  // the connection may abandon again as it closes
    EXPECT_EQ(test.disconnects, 1);
    EXPECT_FALSE(test.responder.send(Response::text("too late")));
    test.run_loop();
    EXPECT_EQ(test.disconnects, 1);
}

TEST(Responder, OnDisconnectRegisteredAfterTheClientLeftRunsOnTheLoop) {
    ResponderUnderTest test;
    test.client_leaves();

    test.count_disconnects();
    EXPECT_EQ(test.disconnects, 0) << "posted to the loop, not run by the registering thread";
    test.run_loop();
    EXPECT_EQ(test.disconnects, 1);
}

TEST(Responder, OnDisconnectRegisteredAfterSendNeverRuns) {
    ResponderUnderTest test;
    ASSERT_TRUE(test.responder.send(Response::text("done")));
    test.count_disconnects();

    test.client_leaves();
    EXPECT_EQ(test.disconnects, 0);
}

TEST(Responder, ASecondOnDisconnectReplacesTheFirst) {
    ResponderUnderTest test;
    int first = 0;
    test.responder.on_disconnect([&] { ++first; });
    test.count_disconnects();

    test.client_leaves();
    EXPECT_EQ(first, 0);
    EXPECT_EQ(test.disconnects, 1);
}

TEST(Responder, SendsOnlyOnce) {
    ResponderUnderTest test;
    EXPECT_TRUE(test.responder.send(Response::text("first")));
    EXPECT_FALSE(test.responder.send(Response::text("second")));
    test.run_loop();
}

}  // namespace
}  // namespace prefork

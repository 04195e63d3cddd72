#include <prefork/common/control_channel.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace prefork {
namespace {

using namespace std::chrono_literals;

// Runs `io` until `done()` holds or `limit` has passed; returns `done()`.
template <class Done>
bool run_until(boost::asio::io_context& io, std::chrono::milliseconds limit, Done done) {
    auto give_up_at = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < give_up_at) {
        if (io.stopped()) io.restart();
        io.run_one_for(10ms);
    }
    return done();
}

// A channel on the master's end of a control socket pair, and what it has heard.
struct ChannelUnderTest {
    boost::asio::io_context io;
    UniqueFd peer;  // the worker's end
    std::vector<control::Message> messages;
    int closed = 0;
    std::unique_ptr<ControlChannel> channel;

    ChannelUnderTest() {
        ControlSocketPair pair = make_control_socket_pair();
        peer = std::move(pair.worker_end);
        channel = std::make_unique<ControlChannel>(io, std::move(pair.master_end));
    }

    void start() {
        auto on_message = [this](control::Message message, std::vector<UniqueFd>) {
            messages.push_back(std::move(message));
        };
        channel->start(on_message, [this] { ++closed; });
    }

    void send_empty_datagram() {
        ASSERT_EQ(::send(peer.get(), "", 0, 0), 0) << std::strerror(errno);
    }
    void send(const control::Message& message) {
        ASSERT_FALSE(send_fds(peer.get(), control::encode(message), {}));
    }
};

TEST(ControlChannel, AnEmptyDatagramIsIgnoredAndTheMessageAfterItArrives) {
    ChannelUnderTest test;
    test.send_empty_datagram();
    test.send(control::Ready{123});
    test.start();

    ASSERT_TRUE(run_until(test.io, 2s, [&] { return !test.messages.empty() || test.closed; }));
    ASSERT_EQ(test.messages.size(), 1u);
    const auto* ready = std::get_if<control::Ready>(&test.messages[0]);
    ASSERT_NE(ready, nullptr);
    EXPECT_EQ(ready->pid, 123);
    EXPECT_EQ(test.closed, 0) << "an empty datagram was taken for the peer's departure";
    EXPECT_TRUE(test.channel->is_open());
}

TEST(ControlChannel, AnEmptyDatagramAloneOnTheSocketIsNotThePeerLeaving) {
    ChannelUnderTest test;
    test.start();
    test.io.poll();
    test.send_empty_datagram();

    run_until(test.io, 100ms, [&] { return test.closed > 0; });
    EXPECT_EQ(test.closed, 0) << "an empty datagram was taken for the peer's departure";
    ASSERT_TRUE(test.channel->is_open());

    test.send(control::Ready{123});
    ASSERT_TRUE(run_until(test.io, 2s, [&] { return !test.messages.empty(); }));
    EXPECT_TRUE(std::holds_alternative<control::Ready>(test.messages[0]));
    EXPECT_EQ(test.closed, 0);
}

TEST(ControlChannel, ThePeerLeavingRunsTheClosedHandlerOnce) {
    ChannelUnderTest test;
    test.send(control::Ready{123});
    test.start();
    test.peer.reset();

    ASSERT_TRUE(run_until(test.io, 2s, [&] { return test.closed > 0; }));
    EXPECT_EQ(test.messages.size(), 1u) << "what the peer said before it left is heard";
    test.io.restart();
    test.io.run_for(20ms);
    EXPECT_EQ(test.closed, 1);
    EXPECT_FALSE(test.channel->is_open());
}

TEST(ControlChannel, AFloodOfMessagesDoesNotKeepTheLoopFromOtherWork) {
    constexpr int kMostHandledBeforeOtherWork = 200;  // the channel takes 64 per wake-up
    ChannelUnderTest test;
    int buffer = 8 << 20;  // as much as the system allows
    ::setsockopt(test.peer.get(), SOL_SOCKET, SO_SNDBUF, &buffer, sizeof(buffer));
    std::string ready = control::encode(control::Ready{123});
    int queued = 0;
    while (queued < 1000) {
        std::error_code ec = send_fds(test.peer.get(), ready, {});
        if (ec == std::errc::resource_unavailable_try_again) break;
        ASSERT_FALSE(ec) << ec.message();
        ++queued;
    }
    ASSERT_GT(queued, kMostHandledBeforeOtherWork + 64)
        << "the socket holds too few messages for the test to mean anything";

    int handled = 0;
    int handled_when_other_work_ran = -1;
    test.channel->start(
        [&](control::Message, std::vector<UniqueFd>) {
            if (++handled == 1) {
                boost::asio::post(test.io, [&] { handled_when_other_work_ran = handled; });
            }
        },
        [&] { ++test.closed; });

    ASSERT_TRUE(run_until(test.io, 5s, [&] { return handled == queued || test.closed; }))
        << handled << " of " << queued << " messages handled";
    EXPECT_EQ(handled, queued);
    EXPECT_GE(handled_when_other_work_ran, 1) << "the posted handler never ran";
    EXPECT_LE(handled_when_other_work_ran, kMostHandledBeforeOtherWork)
        << "the loop handled a flood of " << queued << " messages before anything else";
    EXPECT_EQ(test.closed, 0);
}

// A peer that exits with messages of ours unread resets the socket; what it sent before
// (connections handed off, its last counts) is still heard.
TEST(ControlChannel, APeerThatLeavesWithOurMessagesUnreadIsStillHeardToTheEnd) {
    ChannelUnderTest test;
    test.start();
    for (int i = 1; i <= 3; ++i) test.send(control::Ready{i});
    ASSERT_TRUE(test.channel->send(control::ReopenLogs{}));  // never read by the peer
    test.peer.reset();
    test.channel->receive_queued();
    ASSERT_EQ(test.messages.size(), 3u);
    EXPECT_EQ(std::get<control::Ready>(test.messages[2]).pid, 3);
    EXPECT_EQ(test.closed, 1);
}

// More handoffs than the socket's buffer holds: they wait, in order, with their
// descriptors open, until the peer reads; then when_sent runs.
TEST(ControlChannel, MessagesSentInOrderWaitForRoomAndKeepTheirOrderAndDescriptors) {
    ChannelUnderTest test;
    test.start();
    constexpr int kMessages = 2000;
    for (int i = 0; i < kMessages; ++i) {
        int pipe_ends[2];
        ASSERT_EQ(::pipe2(pipe_ends, O_CLOEXEC), 0);
        std::vector<UniqueFd> fds;
        fds.emplace_back(pipe_ends[0]);
        ::close(pipe_ends[1]);
        test.channel->send_in_order(control::HandOff{std::to_string(i)}, std::move(fds));
    }
    ASSERT_GT(test.channel->waiting(), 0u) << "the socket took them all: the test means nothing";
    bool sent = false;
    test.channel->when_sent([&] { sent = true; });

    int received = 0;
    bool in_order = true, with_descriptor = true;
    while (received < kMessages && run_until(test.io, 5s, [&] {
               pollfd probe{test.peer.get(), POLLIN, 0};
               return ::poll(&probe, 1, 0) > 0;
           })) {
        ReceivedMessage message;
        ASSERT_FALSE(recv_fds(test.peer.get(), message));
        auto hand_off = std::get<control::HandOff>(control::decode(message.payload));
        in_order = in_order && hand_off.bytes == std::to_string(received);
        with_descriptor = with_descriptor && message.fds.size() == 1;
        ++received;
    }
    EXPECT_EQ(received, kMessages);
    EXPECT_TRUE(in_order);
    EXPECT_TRUE(with_descriptor);
    EXPECT_TRUE(run_until(test.io, 1s, [&] { return sent; }));
    EXPECT_EQ(test.channel->waiting(), 0u);
    EXPECT_EQ(test.channel->dropped(), 0u);
}

TEST(ControlChannel, MessagesWaitingWhenThePeerLeavesAreDroppedAndCounted) {
    ChannelUnderTest test;
    test.start();
    for (int i = 0; i < 2000; ++i) test.channel->send_in_order(control::HandOff{"x"}, {});
    std::size_t waiting = test.channel->waiting();
    ASSERT_GT(waiting, 0u);
    bool sent = false;
    test.channel->when_sent([&] { sent = true; });
    test.peer.reset();
    ASSERT_TRUE(run_until(test.io, 2s, [&] { return sent; }));
    EXPECT_EQ(test.channel->dropped(), waiting);
    EXPECT_EQ(test.channel->waiting(), 0u);
}

}  // namespace
}  // namespace prefork

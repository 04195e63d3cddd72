// Per-slot accept queues: one SO_REUSEPORT socket per worker slot, bound and kept by the
// master, and the master's steering of new connections to the slots it names.

#include "listener_set.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace prefork::master {
namespace {

std::uint16_t port_of(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

// Opens `count` connections to 127.0.0.1:port (the kernel completes them into a queue).
std::vector<UniqueFd> connect_many(std::uint16_t port, int count) {
    std::vector<UniqueFd> clients;
    for (int i = 0; i < count; ++i) {
        UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        clients.push_back(std::move(fd));
    }
    return clients;
}

// How many connections wait in each of these listening sockets' queues (taken and closed).
std::map<int, int> take_queued(const std::vector<int>& listeners) {
    std::map<int, int> taken;
    for (std::size_t i = 0; i < listeners.size(); ++i) {
        ::fcntl(listeners[i], F_SETFL, ::fcntl(listeners[i], F_GETFL) | O_NONBLOCK);
        for (;;) {
            int fd = ::accept4(listeners[i], nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break;
            ::close(fd);
            ++taken[int(i)];
        }
    }
    return taken;
}

class PerSlotQueues : public ::testing::Test {
  protected:
    void SetUp() override {
        set_.set_reuseport(true);
        set_.bind_all({parse_listen_address("127.0.0.1:0")});
        for (int slot = 0; slot < 4; ++slot) slots_.push_back(set_.fds_for_slot(slot).at(0));
        port_ = port_of(slots_[0]);
    }
    ListenerSet set_;
    std::vector<int> slots_;  // slot i's socket
    std::uint16_t port_ = 0;
};

TEST_F(PerSlotQueues, EachSlotHasASocketOfItsOwnOnTheSamePort) {
    EXPECT_EQ(std::set<int>(slots_.begin(), slots_.end()).size(), 4u);
    for (int fd : slots_) EXPECT_EQ(port_of(fd), port_);
    EXPECT_EQ(set_.fds_for_slot(2), std::vector<int>{slots_[2]}) << "a slot keeps its socket";
}

TEST_F(PerSlotQueues, NewConnectionsGoOnlyToTheSlotsSteeredTo) {
    set_.steer({2});
    auto clients = connect_many(port_, 20);
    EXPECT_EQ(take_queued(slots_), (std::map<int, int>{{2, 20}}));

    set_.steer({0, 3});
    clients = connect_many(port_, 200);
    auto taken = take_queued(slots_);
    EXPECT_EQ(taken.count(1) + taken.count(2), 0u);
    EXPECT_EQ(taken[0] + taken[3], 200);
    EXPECT_GT(taken[0], 50) << "spread over both";
    EXPECT_GT(taken[3], 50) << "spread over both";

    set_.steer({0, 1, 2, 3});
    clients = connect_many(port_, 400);
    taken = take_queued(slots_);
    for (int slot = 0; slot < 4; ++slot) EXPECT_GT(taken[slot], 50) << "slot " << slot;
}

TEST_F(PerSlotQueues, TheSlotsNotSteeredToAreTheStrayOnes) {
    EXPECT_EQ(set_.stray_fds({0, 3}), (std::vector<int>{slots_[1], slots_[2]}));
    EXPECT_TRUE(set_.stray_fds({0, 1, 2, 3}).empty());
}

TEST_F(PerSlotQueues, APortInUseIsRefusedEvenByAnotherSetWithPerSlotQueues) {
    ListenerSet other;
    other.set_reuseport(true);
    EXPECT_THROW(other.bind_all({parse_listen_address("127.0.0.1:" + std::to_string(port_))}),
                 AddressError)
        << "a second prefork on the same port must fail, not share the connections";
}

TEST(SharedQueue, EverySlotSharesOneSocket) {
    ListenerSet set;
    set.bind_all({parse_listen_address("127.0.0.1:0")});
    EXPECT_EQ(set.fds_for_slot(3), set.fds_for_slot(0));
    EXPECT_TRUE(set.stray_fds({0}).empty());
}

}  // namespace
}  // namespace prefork::master

#include <prefork/common/fd_passing.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace prefork {
namespace {

struct SocketPair {
    UniqueFd a, b;
    SocketPair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
        a.reset(fds[0]);
        b.reset(fds[1]);
    }
};

struct Pipe {
    UniqueFd read, write;
    Pipe() {
        int fds[2];
        EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
        read.reset(fds[0]);
        write.reset(fds[1]);
    }
};

int open_descriptor_count() {
    int count = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    return count - 1;  // the directory's own descriptor
}

// Sends `count` descriptors with a raw sendmsg, bypassing send_fds's own limit.
void send_raw(int socket, const std::string& payload, const std::vector<int>& fds) {
    iovec iov{const_cast<char*>(payload.data()), payload.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    ASSERT_GE(::sendmsg(socket, &msg, 0), 0) << std::strerror(errno);
}

TEST(FdPassing, DescriptorCrossesTheSocketAndWorksOnTheOtherSide) {
    SocketPair sockets;
    Pipe pipe;
    int fd = pipe.write.get();
    ASSERT_FALSE(send_fds(sockets.a.get(), "hello", {&fd, 1}));
    pipe.write.reset();  // only the received copy is left

    ReceivedMessage received;
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_EQ(received.payload, "hello");
    ASSERT_EQ(received.fds.size(), 1u);
    EXPECT_TRUE(::fcntl(received.fds[0].get(), F_GETFD) & FD_CLOEXEC);

    ASSERT_EQ(::write(received.fds[0].get(), "x", 1), 1);
    char byte = 0;
    ASSERT_EQ(::read(pipe.read.get(), &byte, 1), 1);
    EXPECT_EQ(byte, 'x');
}

TEST(FdPassing, ManyDescriptorsArriveInOrder) {
    SocketPair sockets;
    std::vector<Pipe> pipes(kMaxFdsPerMessage);
    std::vector<int> fds;
    for (auto& pipe : pipes) fds.push_back(pipe.write.get());
    ASSERT_FALSE(send_fds(sockets.a.get(), "many", fds));

    ReceivedMessage received;
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    ASSERT_EQ(received.fds.size(), pipes.size());
    for (std::size_t i = 0; i < pipes.size(); ++i) {
        char byte = static_cast<char>(i);
        ASSERT_EQ(::write(received.fds[i].get(), &byte, 1), 1);
        char got = -1;
        ASSERT_EQ(::read(pipes[i].read.get(), &got, 1), 1);
        EXPECT_EQ(got, byte) << "descriptor " << i << " arrived out of order";
    }
}

TEST(FdPassing, MessageWithoutDescriptors) {
    SocketPair sockets;
    ASSERT_FALSE(send_fds(sockets.a.get(), R"({"type":"ready"})", {}));
    ReceivedMessage received;
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_EQ(received.payload, R"({"type":"ready"})");
    EXPECT_TRUE(received.fds.empty());
    EXPECT_FALSE(received.end_of_stream);
}

TEST(FdPassing, TooManyDescriptorsAreRefusedBySender) {
    SocketPair sockets;
    std::vector<int> fds(kMaxFdsPerMessage + 1, sockets.a.get());
    EXPECT_EQ(send_fds(sockets.a.get(), "x", fds), std::errc::message_size);
}

TEST(FdPassing, TruncatedControlDataIsAnErrorAndLeaksNothing) {
    SocketPair sockets;
    Pipe pipe;
    std::vector<int> fds(kMaxFdsPerMessage + 36, pipe.write.get());
    send_raw(sockets.a.get(), "flood", fds);

    int before = open_descriptor_count();
    ReceivedMessage received;
    EXPECT_EQ(recv_fds(sockets.b.get(), received), std::errc::message_size);
    EXPECT_TRUE(received.fds.empty());
    EXPECT_EQ(open_descriptor_count(), before) << "descriptors that arrived were not closed";
}

TEST(FdPassing, TruncatedPayloadIsAnErrorAndLeaksNothing) {
    SocketPair sockets;
    int size = 1 << 20;
    ::setsockopt(sockets.a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    Pipe pipe;
    send_raw(sockets.a.get(), std::string(kMaxMessageSize + 100, 'x'), {pipe.write.get()});

    int before = open_descriptor_count();
    ReceivedMessage received;
    EXPECT_EQ(recv_fds(sockets.b.get(), received), std::errc::message_size);
    EXPECT_EQ(open_descriptor_count(), before);
}

TEST(FdPassing, PeerClosedIsEndOfStream) {
    SocketPair sockets;
    sockets.a.reset();
    ReceivedMessage received;
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_TRUE(received.end_of_stream);
}

TEST(FdPassing, ZeroLengthDatagramIsAnEmptyMessageNotTheEndOfTheStream) {
    SocketPair sockets;
    ASSERT_EQ(::send(sockets.a.get(), "", 0, 0), 0) << std::strerror(errno);

    ReceivedMessage received;
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_FALSE(received.end_of_stream) << "an empty datagram from a live peer";
    EXPECT_TRUE(received.payload.empty());

    ASSERT_FALSE(send_fds(sockets.a.get(), "next", {}));
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_FALSE(received.end_of_stream);
    EXPECT_EQ(received.payload, "next");

    sockets.a.reset();
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_TRUE(received.end_of_stream);
    EXPECT_TRUE(received.payload.empty());
}

TEST(FdPassing, ZeroLengthDatagramFollowedByAnotherIsNotTheEndEvenIfThePeerHasGone) {
    SocketPair sockets;
    ASSERT_EQ(::send(sockets.a.get(), "", 0, 0), 0) << std::strerror(errno);
    ASSERT_FALSE(send_fds(sockets.a.get(), "last words", {}));
    sockets.a.reset();  // what it sent is still there to read

    ReceivedMessage received;
    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_FALSE(received.end_of_stream) << "a datagram is still queued behind the empty one";
    EXPECT_TRUE(received.payload.empty());

    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_FALSE(received.end_of_stream);
    EXPECT_EQ(received.payload, "last words");

    ASSERT_FALSE(recv_fds(sockets.b.get(), received));
    EXPECT_TRUE(received.end_of_stream);
}

TEST(FdPassing, SendToClosedPeerIsAnErrorNotASignal) {
    SocketPair sockets;
    sockets.b.reset();
    EXPECT_EQ(send_fds(sockets.a.get(), "x", {}), std::errc::broken_pipe);
}

}  // namespace
}  // namespace prefork

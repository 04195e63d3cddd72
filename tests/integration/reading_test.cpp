// Reading requests on keep-alive connections: a connection between requests waits for input
// without a system call once a read has found its socket empty (ConnectionSocket::InputWait).
// These are the clients that would hang on such a wait if it missed input: one whose next
// request arrives while the loop is busy with its current one, one whose request is bigger
// than a read takes, one that sends byte by byte, and many at once.

#include "http_client.hpp"
#include "prefork_server.hpp"
#include "raw_client.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace prefork::testing {
namespace {

using namespace std::chrono_literals;

// The next request comes in its own write while the worker's loop spins in the handler of
// the current one: its input is there before the connection waits for it again.
TEST(Reading, ARequestSentWhileTheLoopIsBusyWithTheOneBeforeIsAnswered) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get_request("/")));
    ASSERT_EQ(count_of(read_until_count(client, "Hello, World!", 1, 10s), "Hello, World!"), 1u);
    for (int round = 0; round < 5; ++round) {
        ASSERT_TRUE(client.send(get_request("/spin?ms=300")));
        std::this_thread::sleep_for(100ms);  // the client's pace: the worker reads the first
        ASSERT_TRUE(client.send(get_request("/")));
        std::string seen = read_until_count(client, "Hello, World!", 1, 10s);
        EXPECT_EQ(count_of(seen, "HTTP/1.1 200 OK"), 2u) << "round " << round << ":\n" << seen;
        EXPECT_EQ(count_of(seen, "Hello, World!"), 1u) << "round " << round << ":\n" << seen;
    }
}

// 60 KB arrive in one segment, three times what one read takes: every read but the last
// fills its buffer, and no new input will come to say that the rest is there.
TEST(Reading, ABodyBiggerThanOneReadSentInOneWriteIsReadWhole) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    for (int round = 0; round < 3; ++round) {
        ASSERT_TRUE(client.send(get_request("/")));
        ASSERT_EQ(count_of(read_until_count(client, "Hello, World!", 1, 10s), "Hello, World!"), 1u);
        std::string body(60000, static_cast<char>('a' + round));
        body.back() = '!';
        ASSERT_TRUE(
            client.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                        "Content-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body));
        std::string seen = client.read_until(body, 10s);
        ASSERT_NE(seen.find(body), std::string::npos)
            << "round " << round << ": " << seen.size() << " bytes arrived";
    }
}

// One byte per write: each read finds the socket empty after its byte.
TEST(Reading, ARequestSentByteByByteIsAnswered) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    for (int round = 0; round < 2; ++round) {
        for (char byte : get_request("/")) {
            ASSERT_TRUE(client.send(std::string(1, byte)));
            std::this_thread::sleep_for(2ms);
        }
        std::string seen = read_until_count(client, "Hello, World!", 1, 10s);
        EXPECT_EQ(count_of(seen, "Hello, World!"), 1u) << "round " << round << ":\n" << seen;
    }
}

// Many keep-alive clients, each sending its next request as soon as it has an answer, some
// pipelining two: every request is answered, none waits for input that has come.
TEST(Reading, ManyKeepAliveClientsSendingBackToBackAreAllAnswered) {
    PreforkServer server(Loopback{1});
    constexpr int kClients = 32, kRequests = 200;
    std::vector<int> answered(kClients, 0);
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) {
        threads.emplace_back([&, c] {
            RawClient client(server.port());
            for (int i = 0; i < kRequests;) {
                int burst = (c % 4 == 0 && i + 1 < kRequests) ? 2 : 1;
                std::string requests;
                for (int b = 0; b < burst; ++b) requests += get_request("/");
                if (!client.send(requests)) return;
                std::string seen = read_until_count(client, "Hello, World!", burst, 10s);
                if (count_of(seen, "Hello, World!") != static_cast<std::size_t>(burst)) return;
                i += burst;
                answered[c] = i;
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int c = 0; c < kClients; ++c) EXPECT_EQ(answered[c], kRequests) << "client " << c;
}

// Its next request and its FIN come together, in one edge: the read that takes the request
// is short, yet the end of the stream is still to be read. The worker closes at once, not
// after the idle timeout.
TEST(Reading, AKeepAliveClientThatHalfClosesAfterItsNextRequestIsClosedAtOnce) {
    PreforkServer server(Loopback{1, {}, {"PREFORK_IDLE_TIMEOUT=60"}});
    for (int round = 0; round < 3; ++round) {
        RawClient client(server.port());
        ASSERT_TRUE(client.send(get_request("/")));
        ASSERT_EQ(count_of(read_until_count(client, "Hello, World!", 1, 10s), "Hello, World!"), 1u);
        ASSERT_TRUE(client.send(get_request("/")));
        ::shutdown(client.fd(), SHUT_WR);
        bool closed = false;
        std::string seen = client.read_to_end(10s, &closed);
        EXPECT_TRUE(closed) << "round " << round << ": the worker waited for the idle timeout";
        EXPECT_EQ(count_of(seen, "Hello, World!"), 1u) << "round " << round << ":\n" << seen;
    }
}

// The same after several requests, when the wait for the next one costs no system call (it
// trusts epoll's last report to have told of a FIN): the request and the FIN arrive while
// the loop is held by the request before them (`/block`), so that epoll reports them in one.
TEST(Reading, AKeepAliveClientThatHalfClosesLaterInItsLifeIsClosedAtOnce) {
    PreforkServer server(Loopback{1, {}, {"PREFORK_IDLE_TIMEOUT=60"}});
    for (int earlier = 2; earlier <= 4; ++earlier) {
        RawClient client(server.port());
        for (int i = 0; i < earlier; ++i) {
            ASSERT_TRUE(client.send(get_request("/")));
            ASSERT_EQ(count_of(read_until_count(client, "Hello, World!", 1, 10s), "Hello, World!"),
                      1u);
        }
        ASSERT_TRUE(client.send(get_request("/block?ms=300")));
        // While the loop is held: not a wait for the worker (had it not read /block yet, all
        // three would come in one report, which asks the same of it).
        std::this_thread::sleep_for(50ms);
        ASSERT_TRUE(client.send(get_request("/")));
        ::shutdown(client.fd(), SHUT_WR);
        bool closed = false;
        std::string seen = client.read_to_end(10s, &closed);
        EXPECT_TRUE(closed) << "after " << earlier
                            << " requests: the worker waited for the idle timeout";
        EXPECT_EQ(count_of(seen, "HTTP/1.1 200 OK"), 2u) << "after " << earlier << ":\n" << seen;
        EXPECT_EQ(count_of(seen, "Hello, World!"), 1u) << "after " << earlier << ":\n" << seen;
    }
}

// A client on a Unix socket may pass descriptors along with its request; the worker keeps
// none (the passed end of a pipe is closed: its reader sees the end).
TEST(Reading, DescriptorsPassedByAUnixSocketClientAreNotKept) {
    TempDir dir;
    std::string path = dir.path("app.sock");
    PreforkServer server({"--bind", "unix:" + path, "--workers", "1"}, 1);
    int pipe_ends[2];
    ASSERT_EQ(::pipe(pipe_ends), 0);
    int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    std::string request = get_request("/");
    iovec iov{request.data(), request.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* passed = CMSG_FIRSTHDR(&message);
    passed->cmsg_level = SOL_SOCKET;
    passed->cmsg_type = SCM_RIGHTS;
    passed->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(passed), &pipe_ends[1], sizeof(int));
    ASSERT_EQ(::sendmsg(client, &message, MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    ::close(pipe_ends[1]);
    std::string seen;
    for (int turns = 0; turns < 100 && seen.find("Hello, World!") == std::string::npos; ++turns) {
        pollfd ready{client, POLLIN, 0};
        if (::poll(&ready, 1, 100) <= 0) continue;
        char buffer[4096];
        ssize_t n = ::recv(client, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        seen.append(buffer, static_cast<std::size_t>(n));
    }
    EXPECT_NE(seen.find("Hello, World!"), std::string::npos) << seen;
    pollfd end{pipe_ends[0], POLLIN, 0};
    ASSERT_EQ(::poll(&end, 1, 10000), 1) << "the worker still holds the pipe's write end";
    char byte;
    EXPECT_EQ(::read(pipe_ends[0], &byte, 1), 0);
    ::close(pipe_ends[0]);
    ::close(client);
}

}  // namespace
}  // namespace prefork::testing

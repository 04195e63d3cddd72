// Limits and timeouts that hold against bad clients, request framing that cannot smuggle a
// request, and Expect: 100-continue. Each limit is set through the worker's environment
// (prefork --env NAME=VALUE).

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>

#include <sys/socket.h>
#include <atomic>
#include <cstdlib>
#include <thread>

namespace prefork::testing {
namespace {

PreforkServer one_worker(std::vector<std::string> env_settings = {}) {
    std::vector<std::string> env_flags;
    for (const auto& setting : env_settings) {
        env_flags.push_back("--env");
        env_flags.push_back(setting);
    }
    return PreforkServer(Loopback{1, std::move(env_flags)});
}

// What a raw read gives within `timeout`: the bytes, and whether the server closed.
std::pair<std::string, bool> read_raw(int fd, std::chrono::milliseconds timeout) {
    std::string data;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return {data, false};
        pollfd ready{fd, POLLIN, 0};
        if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) return {data, false};
        char buffer[65536];
        ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) return {data, true};
        data.append(buffer, static_cast<std::size_t>(n));
    }
}

// Reads until a blank line ends a response head (or the server closes, or `timeout`).
std::string read_head(int fd, std::chrono::milliseconds timeout) {
    std::string data;
    for (auto deadline = std::chrono::steady_clock::now() + timeout;
         data.find("\r\n\r\n") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline;) {
        auto [more, closed] = read_raw(fd, 100ms);
        data += more;
        if (closed) break;
    }
    return data;
}

TEST(Limits, HeadersTooLargeGet431) {
    auto server = one_worker();
    HttpConnection connection(server.port());
    connection.send_raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20 * 1024, 'a') +
                        "\r\n\r\n");
    EXPECT_EQ(connection.read_response().result_int(), 431);
    EXPECT_TRUE(connection.closed_by_peer());
}

TEST(Limits, BodyTooLargeGets413WithoutBeingRead) {
    auto server = one_worker({"PREFORK_BODY_LIMIT=1000"});
    HttpConnection connection(server.port(), 10s);
    // Only the header: the answer must not wait for a body that never comes.
    connection.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
    EXPECT_EQ(connection.read_response().result_int(), 413);
    HttpConnection small(server.port());
    EXPECT_EQ(
        small.request(http::verb::post, "/echo", std::string(900, 'b'), "text/plain").result_int(),
        200);
}

TEST(Limits, RequestNotReceivedInTimeGets408) {
    auto server = one_worker({"PREFORK_HEADER_TIMEOUT=0.5", "PREFORK_IDLE_TIMEOUT=0.5"});
    HttpConnection connection(server.port(), 10s);
    connection.send_raw("GET / HTTP/1.1\r\nHost: x\r\n");  // and nothing more
    auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(connection.read_response().result_int(), 408);
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "not the 0.5 s setting";
    EXPECT_TRUE(connection.closed_by_peer());
}

TEST(Limits, IdleKeepAliveConnectionIsClosed) {
    auto server = one_worker({"PREFORK_IDLE_TIMEOUT=0.5"});
    HttpConnection connection(server.port(), 5s);
    EXPECT_EQ(connection.get("/").result_int(), 200);
    EXPECT_TRUE(connection.closed_by_peer());  // waits up to 5 s for the close
}

TEST(Limits, ClientThatStopsReadingIsDisconnected) {
    PreforkServer server(
        Loopback{1, {"--admin", "127.0.0.1:0", "--env", "PREFORK_WRITE_TIMEOUT=0.5"}});
    HttpConnection connection(server.port(), 5s);
    int small = 4096;
    ::setsockopt(connection.native_handle(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    connection.send_raw("GET /bytes?n=50000000 HTTP/1.1\r\nHost: x\r\n\r\n");
    // The client never reads: the worker's write stalls, and the worker lets the connection
    // go (what it had queued in the kernel still trickles out, then the FIN).
    // One heartbeat that counts the request and shows no connection open any more.
    EXPECT_TRUE(eventually(
        [&] {
            auto status = HttpConnection(server.admin_port()).get("/status.json").body();
            return status.find("\"requests\":1,\"active_connections\":0") != std::string::npos;
        },
        15s))
        << "the worker kept the stalled connection";
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!") << "the worker serves on";
}

// Busy connections (a request in progress each) fill both workers: a new client waits in
// a queue until a place is free (with per-slot queues, the master passes it to the worker
// that has one, whichever slot's queue it waited in).
TEST(Limits, WorkerWithOnlyBusyConnectionsAtItsLimitStopsAcceptingAndOthersTakeOver) {
    PreforkServer server(
        Loopback{2, {"--env", "PREFORK_MAX_CONNECTIONS=1", "--admin", "127.0.0.1:0"}});
    // One busy connection per worker: the second can only go to the worker the first is not on.
    HttpConnection first(server.port(), 20s);
    first.send_raw("GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    HttpConnection second(server.port(), 20s);
    second.send_raw("GET /sleep?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(2));

    auto started = std::chrono::steady_clock::now();
    HttpConnection third(server.port(), 500ms);  // both full and busy: it waits in the queue
    third.send_raw("GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THROW(third.read_response(), boost::system::system_error);
    EXPECT_EQ(first.read_response().result_int(), 200);  // the first worker has a place again
    std::string data = read_head(third.native_handle(), 10s);
    EXPECT_NE(data.find("200 OK"), std::string::npos)
        << "not served once a place was free: " << data;
    EXPECT_GT(std::chrono::steady_clock::now() - started, 2s) << "served before a place was free";
}

// Idle keep-alive connections cannot lock new clients out: at its limit a worker closes
// the connection idle the longest to admit a new one.
TEST(Limits, AtTheConnectionLimitTheLongestIdleConnectionMakesRoomForANewClient) {
    auto server = one_worker({"PREFORK_MAX_CONNECTIONS=3"});
    std::vector<std::unique_ptr<HttpConnection>> idle;
    for (int i = 0; i < 3; ++i) {
        idle.push_back(std::make_unique<HttpConnection>(server.port(), 5s));
        EXPECT_EQ(idle.back()->get("/").result_int(), 200);  // and then idle
    }
    for (int i = 0; i < 5; ++i) {  // each new client is served at once
        HttpConnection newcomer(server.port(), 5s);
        auto started = std::chrono::steady_clock::now();
        EXPECT_EQ(newcomer.get("/").body(), "Hello, World!");
        EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
    }
    EXPECT_TRUE(idle.front()->closed_by_peer()) << "the longest idle was not the one closed";
}

TEST(Limits, ExpectContinueGetsAnInterimResponseBeforeTheBody) {
    auto server = one_worker();
    HttpConnection connection(server.port(), 10s);
    connection.send_raw(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        "Expect: 100-continue\r\n\r\n");
    std::string interim = read_head(connection.native_handle(), 10s);
    EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    connection.send_raw("hello");
    auto response = connection.read_response();
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_EQ(response.body(), "hello");
}

TEST(Framing, AmbiguousRequestsAreRefusedAndTheConnectionClosed) {
    auto server = one_worker();
    for (const std::string& request : std::vector<std::string>{
             // Content-Length and Transfer-Encoding together, in both orders
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: "
             "chunked\r\n\r\n0\r\n\r\n",
             "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
             "4\r\n\r\n0\r\n\r\n",
             // two different lengths
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: "
             "5\r\n\r\nabcde",
             // a coding after chunked: the body's end is unknown
             "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nGET "
             "/\r\n0\r\n\r\n",
             // a chunk size that is not hexadecimal
             "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
             "chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
             // a header line without a colon
             "GET / HTTP/1.1\r\nHost x\r\n\r\n",
             // a repeated length, even an equal one (RFC 9112 §6.3: one value)
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: "
             "3\r\n\r\nabc",
         }) {
        HttpConnection connection(server.port());
        connection.send_raw(request);
        EXPECT_EQ(connection.read_response().result_int(), 400) << request;
        EXPECT_TRUE(connection.closed_by_peer()) << request;
    }
    // Framing that is fine: a chunked body.
    HttpConnection chunked(server.port());
    chunked.send_raw(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    EXPECT_EQ(chunked.read_response().body(), "abcde");
}

// The Asio server that crashed when a client hung up during a large write: here the write
// fails quietly (no SIGPIPE, one write in flight, the connection owned until its last
// completion) and the worker's memory goes back to where it was.
TEST(Connections, ClientsHangingUpDuringLargeWritesHurtNothing) {
    // Under AddressSanitizer, freed memory waits in a quarantine first: without one, the
    // worker's memory can be measured (and no other test loses use-after-free detection).
    const char* asan = std::getenv("ASAN_OPTIONS");
    std::string asan_options =
        std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":quarantine_size_mb=0";
    PreforkServer server(Loopback{.workers = 1, .env = {asan_options}});
    pid_t worker = server.children().at(0);
    HttpConnection warm_up(server.port());
    EXPECT_EQ(warm_up.get("/bytes?n=50000000").body().size(), 50'000'000u);
    // The next answer on the connection comes once the worker has let the 50 MB go.
    EXPECT_EQ(warm_up.get("/").result_int(), 200);
    auto before = resident_kib(worker);

    std::atomic<bool> stop{false};
    std::atomic<int> full_downloads{0}, failed_downloads{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
        readers.emplace_back([&] {
            for (int i = 0; i < 20 && !stop; ++i) {
                try {
                    auto body = HttpConnection(server.port(), 10s).get("/bytes?n=5000000").body();
                    (body.size() == 5'000'000u ? full_downloads : failed_downloads)++;
                } catch (...) {
                    ++failed_downloads;
                }
            }
        });
    }
    for (int i = 0; i < 30; ++i) {
        HttpConnection quitter(server.port(), 5s);
        quitter.send_raw("GET /bytes?n=50000000 HTTP/1.1\r\nHost: x\r\n\r\n");
        pollfd ready{quitter.native_handle(), POLLIN, 0};
        ASSERT_EQ(::poll(&ready, 1, 10000), 1);
        char first[4096];
        EXPECT_GT(::recv(quitter.native_handle(), first, sizeof(first), 0), 0);  // the first bytes
        if (i % 2) {  // a reset instead of a FIN
            linger abort{1, 0};
            ::setsockopt(quitter.native_handle(), SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
        }
    }  // each hangs up here, mid-write
    for (auto& reader : readers) reader.join();

    EXPECT_EQ(failed_downloads.load(), 0);
    EXPECT_EQ(full_downloads.load(), 40);
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u) << "the worker died:\n"
                                                                          << server.output();
    EXPECT_EQ(server.children(), std::vector<pid_t>{worker});
    auto after = resident_kib(worker);  // the last hang-ups may still be being let go
    eventually(
        [&] {
            after = resident_kib(worker);
            return after < before + 20 * 1024;
        },
        10s);
    EXPECT_LT(after, before + 20 * 1024)
        << "RSS " << before << " KiB before, " << after << " KiB after";
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
}

}  // namespace
}  // namespace prefork::testing

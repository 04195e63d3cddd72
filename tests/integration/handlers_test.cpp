// Handlers that never block the loop: coroutines on timers, work offloaded to the pool,
// and responses completed from other threads, also while clients hang up.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace prefork::testing {
namespace {

TEST(Handlers, HundredConcurrentSleepsOnOneWorkerFinishTogether) {
    PreforkServer server(Loopback{1});
    std::vector<std::unique_ptr<HttpConnection>> connections;
    auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) {
        connections.push_back(std::make_unique<HttpConnection>(server.port(), 30s));
        connections.back()->send_raw("GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    for (auto& connection : connections)
        EXPECT_EQ(connection->read_response().body(), "slept 3000 ms\n");
    // One after the other would take 300 s; together, about 3 s.
    EXPECT_LT(std::chrono::steady_clock::now() - started, 20s);
}

TEST(Handlers, LoopAnswersWhileTheOffloadPoolIsBusy) {
    PreforkServer server(Loopback{1, {"--env", "PREFORK_OFFLOAD_THREADS=2"}});
    pid_t worker = server.children().at(0);
    std::vector<std::unique_ptr<HttpConnection>> busy;
    for (int i = 0; i < 4; ++i) {  // twice as many jobs as threads: the pool's queue is full
        busy.push_back(std::make_unique<HttpConnection>(server.port(), 30s));
        busy.back()->send_raw("GET /offload?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    ASSERT_TRUE(eventually([&] { return threads_in_nanosleep(worker) == 2; }, 10s))
        << "the pool's two threads are not both at work";
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(HttpConnection(server.port(), 3s).get("/").body(), "Hello, World!")
            << "the loop waited for the pool";
    }
    for (auto& connection : busy) {
        EXPECT_EQ(connection->read_response().body(), "worked 5000 ms off the loop\n");
    }
}

TEST(Handlers, ClientThatHangsUpCancelsItsCoroutine) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0", "--log-level", "debug"}});
    {
        HttpConnection impatient(server.port());
        impatient.send_raw("GET /sleep?ms=20000 HTTP/1.1\r\nHost: x\r\n\r\n");
        ASSERT_TRUE(server.wait_for_requests_received(1));
    }  // hangs up
    EXPECT_EQ(server.wait_for_lines("the client left while its request was handled", 1, 15s).size(),
              1u)
        << server.output();
    // The worker lets go of the connection at once, not after 20 s.
    EXPECT_TRUE(eventually(
        [&] {
            auto metrics = HttpConnection(server.admin_port()).get("/metrics").body();
            return metrics.find("\nprefork_active_connections 0\n") != std::string::npos;
        },
        15s));
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
}

TEST(Handlers, ClientsThatHangUpDuringOffloadedWorkLeaveTheWorkerServing) {
    PreforkServer server(Loopback{1});
    pid_t worker = server.children().at(0);
    for (int i = 0; i < 8; ++i) {
        HttpConnection impatient(server.port());
        impatient.send_raw("GET /offload?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n");
        std::this_thread::sleep_for(30ms);
    }  // each hangs up while its work runs on the pool
    // The work ends, and resumes a cancelled handler.
    ASSERT_TRUE(eventually([&] { return threads_in_nanosleep(worker) == 0; }, 10s));
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
    ASSERT_EQ(server.children().size(), 1u);
    EXPECT_EQ(server.children()[0], worker) << "the worker died:\n" << server.output();
}

// Crow's double free: responses completed from other threads while their clients hang
// up at random moments. The worker must neither crash nor leak (the sanitizer build
// runs this too).
TEST(Handlers, CompletionsFromOtherThreadsWhileClientsHangUp) {
    PreforkServer server(Loopback{2});
    std::atomic<int> answered{0}, abandoned{0}, wrong{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([&, t] {
            for (int i = 0; i < 250; ++i) {
                int ms = (i * 7 + t) % 6;
                try {
                    HttpConnection connection(server.port(), 5s);
                    connection.send_raw("GET /later?ms=" + std::to_string(ms) +
                                        " HTTP/1.1\r\nHost: x\r\n\r\n");
                    if ((i + t) % 3 == 0) {
                        if (i % 2)
                            std::this_thread::sleep_for(std::chrono::microseconds(500 * (i % 7)));
                        ++abandoned;  // hangs up before (or while) the answer comes
                        continue;
                    }
                    auto response = connection.read_response();
                    if (response.result_int() == 200 &&
                        response.body().starts_with("answered from another thread")) {
                        ++answered;
                    } else {
                        ++wrong;
                    }
                } catch (const std::exception&) {
                    ++wrong;
                }
            }
        });
    }
    for (auto& client : clients) client.join();
    EXPECT_EQ(wrong.load(), 0);
    EXPECT_EQ(answered.load() + abandoned.load(), 2000);
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u) << "a worker died:\n"
                                                                          << server.output();
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

}  // namespace
}  // namespace prefork::testing

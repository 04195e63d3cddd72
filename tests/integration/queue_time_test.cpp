// prefork_request_queue_seconds: how long a request waited for its worker, from the kernel's
// receive timestamp of its first byte to the worker taking it, checked against what the
// clients themselves measured.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <future>
#include <sstream>

namespace prefork::testing {
namespace {

using Clock = std::chrono::steady_clock;

double metric(const PreforkServer& server, const std::string& sample) {
    std::istringstream lines(HttpConnection(server.admin_port()).get("/metrics").body());
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
}

// The worker's loop is blocked for 1 s (/block) while four requests arrive on
// connections of their own: each waits for the loop, and the histogram says how long.
TEST(QueueTime, RequestsThatArriveWhileTheLoopIsBlockedAreCountedWithTheirWait) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    pid_t worker = server.children().at(0);
    std::vector<std::unique_ptr<HttpConnection>> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(std::make_unique<HttpConnection>(server.port(), 10s));
        ASSERT_EQ(clients.back()->get("/").result_int(), 200);
    }
    const std::string count = "prefork_request_queue_seconds_count";
    ASSERT_TRUE(eventually([&] { return metric(server, count) == 4; }, 5s));
    double sum_before = metric(server, "prefork_request_queue_seconds_sum");
    double quick_before = metric(server, "prefork_request_queue_seconds_bucket{le=\"0.1\"}");

    auto blocked = std::async(std::launch::async, [&] {
        return HttpConnection(server.port(), 10s).get("/block?ms=1000").result_int();
    });
    ASSERT_TRUE(wait_until_in_nanosleep(worker, 5s));
    std::vector<std::future<double>> waits;
    for (auto& client : clients) {
        waits.push_back(std::async(std::launch::async, [&client] {
            auto sent = Clock::now();
            EXPECT_EQ(client->get("/").body(), "Hello, World!");
            return std::chrono::duration<double>(Clock::now() - sent).count();
        }));
    }
    double client_total = 0;
    for (auto& wait : waits) {
        double seconds = wait.get();
        EXPECT_GT(seconds, 0.1) << "the loop was not blocked when the request arrived";
        client_total += seconds;
    }
    EXPECT_EQ(blocked.get(), 200);

    ASSERT_TRUE(eventually([&] { return metric(server, count) == 9; }, 5s));
    double counted = metric(server, "prefork_request_queue_seconds_sum") - sum_before;
    EXPECT_NEAR(counted, client_total, 4 * 0.010)
        << "the four requests waited " << client_total << " s by their clients' clocks";
    // Of the five, only /block itself was taken at once.
    EXPECT_EQ(metric(server, "prefork_request_queue_seconds_bucket{le=\"0.1\"}") - quick_before, 1);
}

}  // namespace
}  // namespace prefork::testing

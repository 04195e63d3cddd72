// --worker-memory-limit: a leaking worker is replaced before it takes the machine, and its
// clients do not notice; one far above the limit is killed at once.

#include "client_load.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "raw_client.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

constexpr std::uint64_t kMiB = 1024;  // in KiB, as /proc says it

// The resident memory of a freshly started worker, in KiB (larger under sanitizers): the
// limits below are set above it.
std::uint64_t idle_worker_kib() {
    PreforkServer server(Loopback{1});
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200);
    return resident_kib(server.children().at(0));
}

double metric(const PreforkServer& server, const std::string& sample) {
    std::istringstream lines(HttpConnection(server.admin_port()).get("/metrics").body());
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
}

std::string megabytes(std::uint64_t kib) {
    return std::to_string(kib / kMiB) + "M";
}

// Two workers leak 1 MiB per request, 50 requests a second, while clients keep going: each is
// replaced once above the limit, with no failed request, and none ever gets to twice the limit.
TEST(MemoryLimit, LeakingWorkersAreReplacedAndNoRequestFails) {
    std::uint64_t limit_kib = idle_worker_kib() + 48 * kMiB;
    PreforkServer server(
        Loopback{2, {"--admin", "127.0.0.1:0", "--worker-memory-limit", megabytes(limit_kib)}});
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> most_kib{0};
    std::thread watcher([&] {
        while (!done) {
            for (pid_t worker : server.children()) {
                std::uint64_t kib = resident_kib(worker);
                if (kib > most_kib) most_kib = kib;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    ClientLoad load(server.port(), "/", "Hello, World!", 4, 2, 6s);
    int leaks = 0, leak_failures = 0;
    for (auto until = std::chrono::steady_clock::now() + 5s;
         std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
        try {
            ++leaks;
            if (http_get(server.port(), "/leak?mb=1").result_int() != 200) ++leak_failures;
        } catch (const std::exception&) {
            ++leak_failures;
        }
    }
    auto result = load.wait();
    done = true;
    watcher.join();
    EXPECT_EQ(result.failed, 0u) << (result.errors.empty() ? "" : result.errors[0]);
    EXPECT_GT(result.ok, 0u);
    EXPECT_EQ(leak_failures, 0) << "of " << leaks;
    EXPECT_GE(metric(server, "prefork_worker_exits_total{cause=\"memory\"}"), 2);
    EXPECT_LT(most_kib.load(), 2 * limit_kib) << "limit " << limit_kib << " KiB";
    EXPECT_EQ(server.output().find("more than twice"), std::string::npos) << server.output();
    EXPECT_GE(server.wait_for_lines("above --worker-memory-limit", 2, 0ms).size(), 2u);
    EXPECT_TRUE(server.wait_for_children(2));
}

// A leak of more than twice the limit at once: the worker is killed, not drained, and
// replaced. A /block pipelined behind the leak keeps the worker from finishing a drain
// first (it crosses the limit on its way to twice it, which starts a replacement).
TEST(MemoryLimit, AWorkerAboveTwiceTheLimitIsKilledAtOnce) {
    std::uint64_t limit_kib = idle_worker_kib() + 32 * kMiB;
    PreforkServer server(
        Loopback{1, {"--admin", "127.0.0.1:0", "--worker-memory-limit", megabytes(limit_kib)}});
    pid_t worker = server.children().at(0);
    std::uint64_t leak_mib = 2 * limit_kib / kMiB + 16;
    RawClient client(server.port());
    ASSERT_TRUE(client.send("GET /leak?mb=" + std::to_string(leak_mib) +
                            " HTTP/1.1\r\nHost: x\r\n\r\nGET /block?ms=5000 HTTP/1.1\r\n"
                            "Host: x\r\n\r\n"));
    EXPECT_TRUE(wait_until_gone({worker}, 5s));
    EXPECT_EQ(server.wait_for_lines("more than twice --worker-memory-limit", 1).size(), 1u)
        << server.output();
    EXPECT_TRUE(eventually(
        [&] { return server.children().size() == 1 && server.children()[0] != worker; }, 10s));
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
    EXPECT_EQ(metric(server, "prefork_worker_exits_total{cause=\"memory\"}"), 1);
}

TEST(MemoryLimit, ABadSizeIsRefusedWithOneLine) {
    ChildProcess prefork({prefork_binary(), "--worker-memory-limit", "lots", "--", demo_binary()});
    EXPECT_EQ(prefork.wait_exit_status(10s), 2);
    EXPECT_NE(prefork.output().find("invalid value \"lots\" for --worker-memory-limit"),
              std::string::npos)
        << prefork.output();
}

}  // namespace
}  // namespace prefork::testing

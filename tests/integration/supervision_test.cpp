// Supervision: one crashing, hanging or worn-out worker costs at most its own
// connections, never the service.

#include "child_process.hpp"
#include "client_load.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

namespace prefork::testing {
namespace {

// A keep-alive connection to a worker other than `not_pid`.
std::unique_ptr<HttpConnection> connection_to_other_worker(std::uint16_t port,
                                                           const std::string& not_pid) {
    for (int i = 0; i < 400; ++i) {
        auto connection = std::make_unique<HttpConnection>(port);
        if (connection->get("/pid").body() != not_pid) return connection;
    }
    throw std::runtime_error("every connection went to worker " + not_pid);
}

bool contains(const std::vector<pid_t>& pids, const std::string& pid) {
    return std::find(pids.begin(), pids.end(), std::stoi(pid)) != pids.end();
}

TEST(Supervision, CrashedWorkerIsReplacedWhileTheOtherKeepsServing) {
    PreforkServer server(Loopback{2});
    HttpConnection survivor(server.port());
    std::string survivor_pid = survivor.get("/pid").body();
    auto victim = connection_to_other_worker(server.port(), survivor_pid);
    std::string victim_pid = victim->get("/pid").body();

    // A bounded loop on the surviving worker's connection, across the crash.
    std::atomic<int> failures{0}, served{0};
    std::atomic<bool> stop{false};
    std::thread loop([&] {
        for (int i = 0; i < 5000 && !stop; ++i) {
            try {
                if (survivor.get("/").result_int() == 200)
                    ++served;
                else
                    ++failures;
            } catch (...) {
                ++failures;
            }
        }
    });
    victim->send_raw("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THROW(victim->read_response(), boost::system::system_error) << "no answer from a crash";

    auto died =
        server.wait_for_lines("worker " + victim_pid + " (generation 1) killed by SIGSEGV", 1);
    ASSERT_EQ(died.size(), 1u) << server.output();
    EXPECT_NE(died[0].find("replacing it"), std::string::npos);
    EXPECT_EQ(server.wait_for_lines(" ready (generation", 3).size(), 3u)
        << "no replacement became ready";
    stop = true;
    loop.join();

    EXPECT_EQ(failures.load(), 0);
    EXPECT_GT(served.load(), 0);
    auto workers = server.children();
    EXPECT_EQ(workers.size(), 2u);
    EXPECT_TRUE(contains(workers, survivor_pid));
    EXPECT_FALSE(contains(workers, victim_pid));
    EXPECT_EQ(survivor.get("/pid").body(), survivor_pid);
}

TEST(Supervision, WorkerCommandThatExitsAtOnceMakesPreforkExitOne) {
    ChildProcess prefork(
        {prefork_binary(), "--bind", "127.0.0.1:0", "--workers", "2", "--", "/bin/false"});
    EXPECT_EQ(prefork.wait_exit_status(15s), 1) << prefork.output();
    auto giving_up = prefork.wait_for_lines("giving up", 1, 0ms);
    ASSERT_EQ(giving_up.size(), 1u) << prefork.output();
    EXPECT_NE(giving_up[0].find("exited with status 1 before it was ready"), std::string::npos)
        << giving_up[0];
    EXPECT_LE(prefork.wait_for_lines(" started (generation", 100, 0ms).size(), 4u)
        << "a respawn storm:\n"
        << prefork.output();
}

TEST(Supervision, CrashLoopBacksOffMoreAndMoreAndTermStillStops) {
    ChildProcess prefork({prefork_binary(), "--bind", "127.0.0.1:0", "--workers", "1", "--env",
                          "CRASH_AFTER_MS=1500", "--", crash_worker_binary()});
    // (1.5 s: long enough for each worker to be ready first, even under a sanitizer on a busy
    // machine; a worker that never gets ready is a failed start, which ends prefork)
    auto lines = prefork.wait_for_lines("crash loop: next worker in ", 4, 60s);
    ASSERT_EQ(lines.size(), 4u) << prefork.output();
    std::vector<double> delays;
    for (const auto& line : lines) {
        delays.push_back(std::stod(line.substr(line.find("next worker in ") + 15)));
    }
    for (std::size_t i = 1; i < delays.size(); ++i) {
        EXPECT_GT(delays[i], delays[i - 1]) << "the backoff does not grow";
    }
    prefork.signal(SIGTERM);
    EXPECT_EQ(prefork.wait_exit_status(10s), 0) << prefork.output();
}

TEST(Supervision, HungWorkerIsKilledAndReplacedWhileTheOtherAnswers) {
    PreforkServer server(Loopback{2, {"--timeout", "2"}});
    HttpConnection hung(server.port(), 30s);
    std::string hung_pid = hung.get("/pid").body();
    hung.send_raw("GET /block?ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n");
    // Let the worker take the request and block: connections it accepted before that are
    // its own to lose; the point is the ones that come after.
    ASSERT_TRUE(wait_until_in_nanosleep(std::stoi(hung_pid), 10s));

    ClientLoad load(server.port(), "/", "Hello, World!", 2, 2, 15s);
    auto killed =
        server.wait_for_lines("worker " + hung_pid + " (generation 1) silent for", 1, 10s);
    ASSERT_EQ(killed.size(), 1u) << server.output();
    EXPECT_NE(killed[0].find("SIGABRT"), std::string::npos);
    EXPECT_EQ(
        server.wait_for_lines("worker " + hung_pid + " (generation 1) killed by SIGABRT", 1, 5s)
            .size(),
        1u)
        << server.output();
    EXPECT_EQ(server.wait_for_lines(" ready (generation", 3, 5s).size(), 3u);
    auto result = load.stop();
    EXPECT_EQ(result.failed, 0u) << (result.errors.empty() ? "" : result.errors[0]);
    EXPECT_GT(result.ok, 0u);
    EXPECT_THROW(hung.read_response(), boost::system::system_error);
    EXPECT_FALSE(contains(server.children(), hung_pid));
}

TEST(Supervision, MaxRequestsRecyclesWorkersWithoutFailingARequest) {
    PreforkServer server(Loopback{2, {"--max-requests", "50", "--max-requests-jitter", "10"}});
    // A worker serves on past its limit until its replacement is ready (capacity first), so
    // how many recycles a load brings depends on the machine's speed: 2000 requests over
    // limits of 50-60 bring far more than the 6 asked for below.
    ClientLoad load(server.port(), "/", "Hello, World!", 3, 2, 20s, 400);
    auto result = load.wait();
    EXPECT_EQ(result.failed, 0u) << (result.errors.empty() ? "" : result.errors[0]);
    EXPECT_EQ(result.ok, 2000u);

    auto recycled = server.wait_for_lines("requests: replacing it", 6, 5s);
    EXPECT_GE(recycled.size(), 6u) << server.output();
    for (const auto& line : recycled) {
        std::smatch served;
        ASSERT_TRUE(std::regex_search(line, served, std::regex("served (\\d+) requests")));
        EXPECT_GE(std::stoi(served[1]), 50);
    }
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u)
        << "a worker died unexpectedly";
    EXPECT_TRUE(server.wait_for_children(2)) << "the last replaced worker did not finish draining";
}

TEST(Supervision, WorkerToldToStopBySomeoneElseIsReplacedNotCountedAsACrash) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    pid_t victim = server.children().front();
    ::kill(victim, SIGTERM);  // not through the master
    EXPECT_EQ(server.wait_for_lines("is draining on its own", 1).size(), 1u) << server.output();
    EXPECT_EQ(server.wait_for_lines(" ready (generation", 3).size(), 3u);
    EXPECT_TRUE(wait_until_gone({victim}, 5s));
    EXPECT_TRUE(server.wait_for_children(2));
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u) << server.output();
    auto metrics = HttpConnection(server.admin_port()).get("/metrics").body();
    EXPECT_NE(metrics.find("prefork_worker_exits_total{cause=\"signal\"} 1"), std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("prefork_worker_exits_total{cause=\"crash\"} 0"), std::string::npos);
}

TEST(Supervision, TtinAddsAWorkerAndTtouRemovesOneButNeverTheLast) {
    PreforkServer server(Loopback{2, {"--log-level", "debug"}});
    server.signal(SIGTTIN);
    EXPECT_EQ(server.wait_for_lines(" ready (generation", 3).size(), 3u);
    EXPECT_TRUE(server.wait_for_children(3));

    // One at a time: signals sent while the master has not run yet would merge into one.
    for (std::size_t i = 1; i <= 2; ++i) {
        server.signal(SIGTTOU);
        ASSERT_EQ(server.wait_for_lines("received TTOU: now ", i).size(), i) << server.output();
    }
    server.signal(SIGTTOU);
    EXPECT_EQ(server.wait_for_lines("already at 1 worker", 1).size(), 1u);
    EXPECT_TRUE(server.wait_for_children(1));
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200);
    // Each removed worker went through draining, as the debug log shows.
    EXPECT_EQ(server.wait_for_lines(": ready -> draining", 2, 0ms).size(), 2u) << server.output();
}

// --- PID 1 ------------------------------------------------------------------------------

std::string command_of(pid_t pid) {
    std::istringstream in(read_text_file("/proc/" + std::to_string(pid) + "/comm"));
    std::string name;
    in >> name;
    return name;
}

TEST(Supervision, AsPid1ItReapsOrphansOfCrashedWorkersAndStopsOnTerm) {
    PreforkServer server({"unshare", "--pid", "--fork", "--mount-proc"}, Loopback{2});
    // The master is PID 1 in its namespace; from here it is unshare's child.
    auto inside = server.children();
    ASSERT_EQ(inside.size(), 1u);
    pid_t master = inside[0];

    HttpConnection connection(server.port());
    std::string spawned = connection.get("/spawn?seconds=10").body();  // a pid in the namespace
    ASSERT_FALSE(spawned.empty());
    connection.send_raw("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THROW(connection.read_response(), boost::system::system_error);
    ASSERT_EQ(server.wait_for_lines("killed by SIGSEGV", 1).size(), 1u) << server.output();

    // The orphaned `sleep 10` now belongs to the master; it ends, and nothing is left over.
    auto adopted = [&] {
        for (pid_t child : child_pids(master)) {
            if (command_of(child) == "sleep") return child;
        }
        return pid_t{0};
    };
    pid_t orphan = 0;
    eventually(
        [&] {
            orphan = adopted();
            return orphan != 0;
        },
        8s);
    ASSERT_NE(orphan, 0) << "the crashed worker's child was not adopted by the master";
    auto reaped = [&] { return ::access(("/proc/" + std::to_string(orphan)).c_str(), F_OK) != 0; };
    EXPECT_TRUE(eventually(reaped, 20s)) << "the orphan was not reaped (zombie or still running)";
    EXPECT_TRUE(zombie_children(master).empty()) << "a zombie stays in the namespace";
    EXPECT_EQ(server.wait_for_lines(" ready (generation", 3).size(), 3u);
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200);

    ::kill(master, SIGTERM);  // PID 1 gets it because prefork handles it
    EXPECT_EQ(server.wait_exit_status(10s), 0) << server.output();
    EXPECT_NE(server.output().find("stopped (TERM, graceful)"), std::string::npos);
}

}  // namespace
}  // namespace prefork::testing

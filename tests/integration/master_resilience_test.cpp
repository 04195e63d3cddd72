// The master that nothing can knock over: a worker binary removed by a deploy, a client
// that holds the admin endpoint's connections, a descriptor limit that is tight, a stop
// or a reload that comes at an awkward moment. Each costs the master no busy loop, no
// lost worker and no lost control.

#include "child_process.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "raw_client.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// Half a request head: the blank line that would end it never comes.
constexpr const char* kHalfRequest = "GET /healthz HTTP/1.1\r\nHost: x\r\n";

// Puts a copy of `from` at `to`, executable, in one step (rename), as a deploy would: the
// master never sees a half-written file.
void install_executable(const std::string& from, const std::string& to) {
    fs::copy_file(from, to + ".new", fs::copy_options::overwrite_existing);
    fs::permissions(to + ".new", fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
    fs::rename(to + ".new", to);
}

// The CPU time (user + system) a process has used so far, in seconds; -1 when it is gone.
double cpu_seconds(pid_t pid) {
    std::string stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = stat.rfind(')');  // the name in parentheses may hold anything
    if (close == std::string::npos) return -1;
    std::istringstream in(stat.substr(close + 1));
    std::vector<std::string> fields;  // from field 3 (state) on: utime is 14, stime 15
    for (std::string field; in >> field;) fields.push_back(field);
    if (fields.size() < 13) return -1;
    auto ticks = std::stoull(fields[11]) + std::stoull(fields[12]);
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// How many lines of the output hold `needle`, now.
std::size_t count_lines(const ChildProcess& process, const std::string& needle) {
    return process.wait_for_lines(needle, 0, 0ms).size();
}

std::size_t total_lines(const ChildProcess& process) {
    std::string output = process.output();
    return static_cast<std::size_t>(std::count(output.begin(), output.end(), '\n'));
}

// How many descriptors a process has open now (0 when it is gone).
std::size_t open_descriptors(pid_t pid) {
    std::error_code ec;
    std::size_t count = 0;
    for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && it != end; it.increment(ec)) {
        ++count;
    }
    return count;
}

// Sends GET /crash; true when the connection ended without an answer (the worker died).
bool crash_a_worker(std::uint16_t port) {
    HttpConnection victim(port, 10s);
    victim.send_raw("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
    try {
        victim.read_response();
        return false;
    } catch (const boost::system::system_error&) {
        return true;
    }
}

// Whether the server has closed the connection (at once, without waiting).
bool closed_by_server(RawClient& client) {
    bool eof = false;
    client.read_some(0ms, &eof);
    return eof;
}

// A port on 127.0.0.1 that nothing listens on (the kernel's pick, let go at once).
std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot find a free port");
    }
    ::close(fd);
    return ntohs(address.sin_port);
}

// A listening socket of the test's own on 127.0.0.1, which keeps its port busy.
class BusyPort {
  public:
    BusyPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(fd_, 16) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
            ::close(fd_);
            throw std::runtime_error("cannot listen on a port of our own");
        }
        port_ = ntohs(address.sin_port);
    }
    ~BusyPort() { ::close(fd_); }
    BusyPort(const BusyPort&) = delete;
    BusyPort& operator=(const BusyPort&) = delete;
    std::uint16_t port() const { return port_; }

  private:
    int fd_;
    std::uint16_t port_ = 0;
};

// A client of the admin endpoint that keeps `count` connections open, each with half a
// request head, from a thread of its own: it reopens those the master closes, a few at a
// time, until it is stopped or `limit` has passed.
class AdminFlood {
  public:
    struct Result {
        std::size_t opened = 0;     // connections opened with their half request sent
        std::size_t failed = 0;     // connects or sends that did not go through
        std::size_t most_open = 0;  // the most that were open at once
        std::size_t closed_by_master = 0;
    };

    AdminFlood(std::uint16_t port, std::size_t count, std::chrono::seconds limit)
        : port_(port), count_(count), deadline_(Clock::now() + limit), thread_([this] { run(); }) {}
    ~AdminFlood() { stop(); }
    AdminFlood(const AdminFlood&) = delete;
    AdminFlood& operator=(const AdminFlood&) = delete;

    // Waits until the first `count` connections have been opened once.
    bool wait_until_opened(std::chrono::milliseconds timeout) const {
        return eventually([&] { return opened_ >= count_; }, timeout);
    }

    Result stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        return result_;
    }

  private:
    // Reopened per round, every 50 ms: an attacker's pace, not a storm of TIME_WAITs.
    static constexpr std::size_t kReopensPerRound = 20;

    void run() {
        std::vector<std::unique_ptr<RawClient>> connections(count_);
        while (!stop_ && Clock::now() < deadline_) {
            std::size_t open = 0, reopened = 0;
            for (auto& connection : connections) {
                if (connection && !closed_by_server(*connection)) {
                    ++open;
                    continue;
                }
                if (connection) ++result_.closed_by_master;
                connection.reset();
                // The first round opens them all; later ones replace a few at a time.
                if (opened_ >= count_ && reopened >= kReopensPerRound) continue;
                ++reopened;
                try {
                    auto fresh = std::make_unique<RawClient>(port_);
                    if (fresh->send(kHalfRequest)) {
                        connection = std::move(fresh);
                        ++open;
                        ++result_.opened;
                        ++opened_;
                    } else {
                        ++result_.failed;
                    }
                } catch (const std::exception&) {
                    ++result_.failed;
                }
            }
            result_.most_open = std::max(result_.most_open, open);
            std::this_thread::sleep_for(50ms);
        }
    }

    std::uint16_t port_;
    std::size_t count_;
    Clock::time_point deadline_;
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> opened_{0};
    Result result_;  // the thread's alone until it is joined
    std::thread thread_;
};

// --- the worker binary goes away ---------------------------------------------------------

TEST(MasterResilience, WorkerBinaryRemovedDuringShutdownDelayCostsNoCpuAndStopsCleanly) {
    TempDir dir;
    std::string worker = dir.path("prefork-demo");
    install_executable(demo_binary(), worker);
    constexpr auto kDelay = 6s;
    constexpr auto kGraceful = 5s;
    auto server = PreforkServer::with_worker(
        Loopback{2, {"--admin", "127.0.0.1:0", "--shutdown-delay", "6", "--graceful-timeout", "5"}},
        {worker});
    auto port = server->port();
    auto admin = server->admin_port();

    double cpu_at_term = cpu_seconds(server->pid());
    auto term_at = Clock::now();
    server->signal(SIGTERM);
    ASSERT_EQ(server->wait_for_lines("not ready any more", 1).size(), 1u) << server->output();
    fs::remove(worker);  // a deploy took it away
    EXPECT_TRUE(crash_a_worker(port)) << "/crash was answered";
    ASSERT_EQ(server->wait_for_lines("killed by SIGSEGV", 1).size(), 1u) << server->output();
    EXPECT_EQ(server->wait_for_lines("cannot start a worker", 1, 3s).size(), 1u)
        << server->output();

    // The rest of the delay: the master answers, the other worker serves, nothing spins.
    double cpu_used = 0;
    int probes = 0;
    while (Clock::now() < term_at + kDelay - 1s) {
        EXPECT_EQ(HttpConnection(admin).get("/healthz").result_int(), 200);
        EXPECT_EQ(http_get(port, "/").result_int(), 200) << "the surviving worker stopped serving";
        cpu_used = cpu_seconds(server->pid()) - cpu_at_term;
        ++probes;
        std::this_thread::sleep_for(250ms);
    }
    EXPECT_GE(probes, 3);
    std::cout << "master CPU over " << seconds_since(term_at) << " s of the delay: " << cpu_used
              << " s\n";
    EXPECT_LT(cpu_used, 1.5) << "a busy loop while the worker cannot start";

    EXPECT_EQ(server->wait_exit_status(kDelay + kGraceful + 4s), 0) << server->output();
    EXPECT_LT(seconds_since(term_at), 15.0);
    EXPECT_EQ(count_lines(*server, "cannot start a worker"), 1u) << server->output();
    EXPECT_LT(total_lines(*server), 50u) << server->output();
    EXPECT_EQ(count_lines(*server, "stopped (TERM, graceful)"), 1u) << server->output();
}

TEST(MasterResilience, WorkerBinaryRemovedDuringAReloadKeepsTheOldWorkersServingUntilItIsBack) {
    TempDir dir;
    std::string worker = dir.path("prefork-demo");
    install_executable(demo_binary(), worker);
    auto server = PreforkServer::with_worker(Loopback{2, {"--graceful-timeout", "5"}}, {worker});
    auto port = server->port();
    auto old_workers = server->children();
    ASSERT_EQ(old_workers.size(), 2u);

    fs::remove(worker);
    double cpu_at_hup = cpu_seconds(server->pid());
    auto hup_at = Clock::now();
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("reload: starting generation 2", 1).size(), 1u)
        << server->output();
    EXPECT_EQ(server->wait_for_lines("cannot start a worker", 1, 5s).size(), 1u)
        << server->output();

    // The old generation serves on while the new one cannot start.
    int served = 0, failed = 0;
    while (Clock::now() < hup_at + 3s) {
        try {
            if (http_get(port, "/").result_int() == 200) {
                ++served;
            } else {
                ++failed;
            }
        } catch (const std::exception&) {
            ++failed;
        }
        std::this_thread::sleep_for(50ms);
    }
    double cpu_used = cpu_seconds(server->pid()) - cpu_at_hup;
    std::cout << "master CPU over " << seconds_since(hup_at) << " s of a stuck reload: " << cpu_used
              << " s\n";
    EXPECT_EQ(failed, 0);
    EXPECT_GT(served, 10);
    EXPECT_LT(cpu_used, 1.0) << "a busy loop while the worker cannot start";
    EXPECT_EQ(count_lines(*server, "cannot start a worker"), 1u) << server->output();
    auto workers = server->children();
    std::sort(workers.begin(), workers.end());
    std::sort(old_workers.begin(), old_workers.end());
    EXPECT_EQ(workers, old_workers) << "the old workers must serve until new ones are ready";

    install_executable(demo_binary(), worker);  // the deploy finishes
    EXPECT_EQ(server->wait_for_lines("the worker command starts again, after", 1, 30s).size(), 1u)
        << server->output();
    ASSERT_EQ(server->wait_for_lines("reload to generation 2 complete", 1, 30s).size(), 1u)
        << server->output();
    EXPECT_TRUE(wait_until_gone(old_workers, 10s));
    EXPECT_EQ(http_get(port, "/").result_int(), 200);
    EXPECT_EQ(count_lines(*server, "cannot start a worker"), 1u) << server->output();

    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit_status(15s), 0) << server->output();
}

// --- the admin endpoint under a hostile client -------------------------------------------

TEST(MasterResilience, AdminEndpointAnswersAProbeWhileOneClientHoldsManyConnections) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    auto admin = server.admin_port();
    constexpr std::size_t kHeld = 200;
    std::vector<std::unique_ptr<RawClient>> held;
    for (std::size_t i = 0; i < kHeld; ++i) {
        held.push_back(std::make_unique<RawClient>(admin));
        ASSERT_TRUE(held.back()->send(kHalfRequest)) << "connection " << i;
    }

    auto probe_at = Clock::now();
    auto health = HttpConnection(admin, 10s).get("/healthz");
    double probe_took = seconds_since(probe_at);
    EXPECT_EQ(health.result_int(), 200);
    EXPECT_EQ(health.body(), "ok\n");
    EXPECT_LT(probe_took, 3.0) << "the probe waited behind the held connections";

    // At most 64 are kept: the oldest gave way to the newer ones (well before the request
    // timeout would have closed them).
    std::size_t closed = 0;
    eventually(
        [&] {
            closed = 0;
            for (auto& client : held) closed += closed_by_server(*client) ? 1 : 0;
            return closed >= kHeld - 64;
        },
        2s);
    EXPECT_GE(closed, kHeld - 64) << "more than 64 admin connections are held";
    std::size_t newest_open = 0;
    for (std::size_t i = kHeld - 32; i < kHeld; ++i) {
        newest_open += closed_by_server(*held[i]) ? 0 : 1;
    }
    EXPECT_EQ(newest_open, 32u) << "the newest connections were closed, not the oldest";

    auto too_large = HttpConnection(admin).request(http::verb::post, "/reload",
                                                   std::string(5000, 'x'), "text/plain");
    EXPECT_EQ(too_large.result_int(), 413);
    auto metrics = HttpConnection(admin).get("/metrics").body();
    EXPECT_NE(metrics.find("\nprefork_reloads_total 0\n"), std::string::npos) << metrics;
    EXPECT_EQ(count_lines(server, "admin: reload requested"), 0u) << server.output();
    // A broken request and a head beyond 8 KiB are answered, not just dropped.
    HttpConnection broken(admin);
    broken.send_raw("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(broken.read_response().result_int(), 400);
    HttpConnection huge_head(admin);
    huge_head.send_raw("GET /healthz HTTP/1.1\r\nX-Big: " + std::string(9000, 'b') + "\r\n\r\n");
    EXPECT_EQ(huge_head.read_response().result_int(), 431);

    held.clear();
    RawClient silent(admin);
    auto opened_at = Clock::now();
    bool closed_silent = false;
    silent.read_to_end(15s, &closed_silent);
    double lasted = seconds_since(opened_at);
    EXPECT_TRUE(closed_silent) << "a connection that sends nothing is kept open";
    EXPECT_GE(lasted, 4.0) << "closed before its 5 s to send a request";
    EXPECT_LE(lasted, 15.0);
    EXPECT_EQ(HttpConnection(admin).get("/healthz").result_int(), 200);
}

TEST(MasterResilience,
     UnderALowDescriptorLimitEveryCrashedWorkerIsReplacedWhileTheAdminEndpointIsFlooded) {
    constexpr int kWorkers = 4;
    constexpr std::size_t kCrashes = 20;
    PreforkServer server({"prlimit", "--nofile=64:64", "--"},
                         Loopback{kWorkers, {"--admin", "127.0.0.1:0"}});
    ASSERT_NE(read_text_file("/proc/" + std::to_string(server.pid()) + "/comm").find("prefork"),
              std::string::npos)
        << "prlimit did not exec prefork in place";
    auto port = server.port();
    auto admin = server.admin_port();

    AdminFlood flood(admin, 200, 120s);
    ASSERT_TRUE(flood.wait_until_opened(20s));

    double slowest = 0;
    std::size_t most_descriptors = 0;  // the master's, sampled before each crash
    for (std::size_t crash = 1; crash <= kCrashes; ++crash) {
        most_descriptors = std::max(most_descriptors, open_descriptors(server.pid()));
        auto crashed_at = Clock::now();
        ASSERT_TRUE(crash_a_worker(port)) << "crash " << crash << ": /crash was answered";
        ASSERT_EQ(server.wait_for_lines("killed by SIGSEGV", crash).size(), crash)
            << server.output();
        auto ready = server.wait_for_lines(" ready (generation", kWorkers + crash, 15s);
        double took = seconds_since(crashed_at);
        ASSERT_EQ(ready.size(), kWorkers + crash) << "crash " << crash << ": no replacement ready\n"
                                                  << server.output();
        slowest = std::max(slowest, took);
        EXPECT_LT(took, 5.0) << "crash " << crash << ": the replacement took " << took << " s";
        EXPECT_EQ(http_get(port, "/").result_int(), 200) << "after crash " << crash;
    }
    std::cout << "slowest replacement ready " << slowest << " s after its crash\n";

    auto health = HttpConnection(admin, 10s).get("/healthz");
    EXPECT_EQ(health.result_int(), 200) << "while flooded";
    auto result = flood.stop();
    std::cout << "admin flood: " << result.opened << " connections opened, "
              << result.closed_by_master << " closed by the master, " << result.failed
              << " failed, at most " << result.most_open
              << " open at once as the client saw them\n";
    std::cout << "the master had at most " << most_descriptors << " of 64 descriptors open\n";
    EXPECT_GT(result.closed_by_master, 0u) << "the flood never met the limit";
    EXPECT_GE(most_descriptors, 40u) << "the flood did not take the master near its limit";

    EXPECT_TRUE(server.wait_for_children(kWorkers));
    EXPECT_EQ(count_lines(server, "crash loop"), 0u)
        << "a worker that died serving was replaced after a backoff:\n"
        << server.output();
    auto status = json::parse(HttpConnection(admin, 10s).get("/status.json").body()).as_object();
    EXPECT_EQ(status.at("workers").as_array().size(), static_cast<std::size_t>(kWorkers));
    for (const auto& worker : status.at("workers").as_array()) {
        EXPECT_EQ(worker.at("state").as_string(), "ready");
    }
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(15s), 0) << server.output();
}

// A reload starts a whole generation at once: each start keeps a descriptor, and the
// flooded admin endpoint gives its half-sent requests up so that every start finds what it
// needs.
TEST(MasterResilience, AReloadUnderALowDescriptorLimitClosesAdminConnectionsNotWorkerStarts) {
    constexpr int kWorkers = 16;
    PreforkServer server({"prlimit", "--nofile=64:64", "--"},
                         Loopback{kWorkers, {"--admin", "127.0.0.1:0"}});
    AdminFlood flood(server.admin_port(), 200, 120s);
    ASSERT_TRUE(flood.wait_until_opened(20s));

    server.signal(SIGHUP);
    ASSERT_EQ(server.wait_for_lines("reload to generation 2 complete", 1, 60s).size(), 1u)
        << server.output();
    EXPECT_EQ(server.wait_for_lines(" ready (generation 2)", kWorkers, 0ms).size(),
              static_cast<std::size_t>(kWorkers));
    EXPECT_GE(count_lines(server, " admin connection"), 1u)
        << "no start had to take descriptors from the admin endpoint:\n"
        << server.output();
    EXPECT_EQ(count_lines(server, "cannot start a worker"), 0u) << server.output();
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200u);
    flood.stop();
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(30s), 0) << server.output();
}

// --- stopping and reloading through the admin endpoint -----------------------------------

TEST(MasterResilience, PostStopDuringTheShutdownDelayStopsGracefullyNow) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--shutdown-delay", "30"}});
    auto port = server.port();
    auto admin = server.admin_port();
    HttpConnection in_flight(port, 20s);
    in_flight.send_raw("GET /sleep?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1)) << "the request did not reach a worker";

    server.signal(SIGTERM);
    ASSERT_EQ(server.wait_for_lines("not ready any more", 1).size(), 1u) << server.output();
    EXPECT_EQ(http_get(port, "/").result_int(), 200) << "the delay serves";
    auto stop_at = Clock::now();
    EXPECT_EQ(HttpConnection(admin).request(http::verb::post, "/stop").result_int(), 202);

    auto response = in_flight.read_response();
    EXPECT_EQ(response.result_int(), 200) << "the stop was not graceful";
    EXPECT_EQ(response.body(), "slept 3000 ms\n");
    EXPECT_EQ(server.wait_exit_status(10s), 0) << server.output();
    EXPECT_LT(seconds_since(stop_at), 10.0);
    EXPECT_EQ(count_lines(server, "stop during the shutdown delay: stopping gracefully now"), 1u)
        << server.output();
    EXPECT_EQ(count_lines(server, "stopped (TERM, graceful)"), 1u) << server.output();
    EXPECT_TRUE(port_is_free(port));
}

TEST(MasterResilience, AReloadMovesTheAdminEndpoint) {
    TempDir dir;
    std::string config = dir.path("prefork.toml");
    auto config_with_admin = [&](std::uint16_t admin) {
        return "command = [\"" + demo_binary() +
               "\"]\nbind = [\"127.0.0.1:0\"]\nworkers = 2\nadmin = \"127.0.0.1:" +
               std::to_string(admin) + "\"\n";
    };
    std::uint16_t first = free_port();
    dir.write("prefork.toml", config_with_admin(first));
    auto server = PreforkServer::from_config(config, 2);
    ASSERT_EQ(HttpConnection(first).get("/healthz").result_int(), 200);

    std::uint16_t second = free_port();
    while (second == first) second = free_port();
    dir.write("prefork.toml", config_with_admin(second));
    server->signal(SIGHUP);
    ASSERT_EQ(
        server->wait_for_lines("admin endpoint on 127.0.0.1:" + std::to_string(second), 1).size(),
        1u)
        << server->output();
    ASSERT_EQ(server->wait_for_lines("reload to generation 2 complete", 1).size(), 1u)
        << server->output();
    EXPECT_EQ(HttpConnection(second).get("/healthz").result_int(), 200);
    EXPECT_THROW(HttpConnection{first}, boost::system::system_error)
        << "the old admin address still accepts";

    BusyPort busy;
    dir.write("prefork.toml", config_with_admin(busy.port()));
    server->signal(SIGHUP);
    auto failed = server->wait_for_lines("reload failed", 1);
    ASSERT_EQ(failed.size(), 1u) << server->output();
    EXPECT_NE(failed[0].find("admin endpoint"), std::string::npos) << failed[0];
    EXPECT_EQ(HttpConnection(second).get("/healthz").result_int(), 200);
    EXPECT_EQ(count_lines(*server, "reload: starting generation 3"), 0u) << server->output();
    EXPECT_EQ(http_get(server->port(), "/").result_int(), 200);

    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit_status(15s), 0) << server->output();
}

}  // namespace
}  // namespace prefork::testing

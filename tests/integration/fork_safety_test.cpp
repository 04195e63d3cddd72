// The seed of this project: a process that a handler starts, by any means, never holds
// the port or a client's connection, and a stop frees the port while it still runs.

#include "child_process.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;

// The descriptor numbers a process holds.
std::set<int> descriptors_of(pid_t pid) {
    std::set<int> fds;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        fds.insert(std::stoi(entry.path().filename().string()));
    }
    return fds;
}

const std::set<int> kStandard = {0, 1, 2};

// Kills handler children a test started, by pid, when it ends.
struct Children {
    std::vector<pid_t> pids;
    ~Children() {
        for (pid_t pid : pids) ::kill(pid, SIGKILL);
    }
};

TEST(ForkSafety, SpawnedProcessHoldsOnlyTheStandardDescriptors) {
    // prefork itself gets a descriptor it did not open, as from a leaky parent.
    int leak[2];
    ASSERT_EQ(::pipe(leak), 0);  // no O_CLOEXEC, on purpose
    std::string leaked = fs::read_symlink("/proc/self/fd/" + std::to_string(leak[1])).string();
    ChildProcess prefork({prefork_binary(), "--bind", "127.0.0.1:0", "--workers", "1", "--env",
                          "PREFORK_OFFLOAD_THREADS=2", "--", demo_binary()},
                         {}, leak[1]);
    ::close(leak[0]);
    ::close(leak[1]);
    auto lines = prefork.wait_for_lines("listening on 127.0.0.1:", 1);
    ASSERT_EQ(prefork.wait_for_lines(" ready (generation", 1).size(), 1u) << prefork.output();
    auto port =
        static_cast<std::uint16_t>(std::stoi(lines[0].substr(lines[0].find("127.0.0.1:") + 10)));
    auto workers = prefork.children();
    ASSERT_EQ(workers.size(), 1u);
    for (int fd : descriptors_of(workers[0])) {
        std::error_code ec;
        auto target = fs::read_symlink(
            "/proc/" + std::to_string(workers[0]) + "/fd/" + std::to_string(fd), ec);
        EXPECT_NE(target.string(), leaked)
            << "the worker inherited the leaked descriptor as fd " << fd;
    }

    // Other clients connected, and the offload pool busy, while the process starts.
    std::vector<std::unique_ptr<HttpConnection>> others;
    for (int i = 0; i < 3; ++i) {
        others.push_back(std::make_unique<HttpConnection>(port, 10s));
        EXPECT_EQ(others.back()->get("/").result_int(), 200);
    }
    HttpConnection busy(port, 10s);
    busy.send_raw("GET /offload?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(eventually([&] { return threads_in_nanosleep(workers[0]) == 1; }, 10s));
    auto answer = HttpConnection(port).get("/child-fds").body();
    EXPECT_EQ(listed_descriptors(answer), kStandard) << answer;
    EXPECT_EQ(busy.read_response().result_int(), 200);
}

TEST(ForkSafety, ChildForkedWithoutExecHoldsNoListenerNoControlSocketNoClient) {
    PreforkServer server(Loopback{1});
    pid_t worker = server.children().at(0);
    std::vector<std::unique_ptr<HttpConnection>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<HttpConnection>(server.port()));
        EXPECT_EQ(clients.back()->get("/").result_int(), 200);
    }
    Children children;
    HttpConnection connection(server.port());
    pid_t child = std::stoi(connection.get("/fork?seconds=30").body());
    children.pids.push_back(child);
    // The answer may come before the child has run at all: its pthread_atfork handler has
    // closed what it must once it sleeps.
    ASSERT_TRUE(wait_until_sleeping(child, 10s));

    std::set<std::string> worker_sockets;
    for (int fd : descriptors_of(worker)) {
        auto target =
            fs::read_symlink("/proc/" + std::to_string(worker) + "/fd/" + std::to_string(fd))
                .string();
        if (target.starts_with("socket:")) worker_sockets.insert(target);
    }
    ASSERT_GE(worker_sockets.size(), 5u) << "control socket, listener, clients";
    for (int fd : descriptors_of(child)) {
        std::error_code ec;
        auto target =
            fs::read_symlink("/proc/" + std::to_string(child) + "/fd/" + std::to_string(fd), ec)
                .string();
        EXPECT_FALSE(worker_sockets.count(target))
            << "the forked child holds the worker's fd " << fd << " -> " << target;
    }
}

// Every descriptor of every process of a running prefork, against an allow-list.
TEST(ForkSafety, AuditOfEveryProcessFindsOnlyAllowedDescriptors) {
    // A TLS listener too: its certificate and key files are read by the master and closed.
    TempDir dir("prefork-audit");
    ChildProcess openssl({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir.path("k.pem"), "-out",
                          dir.path("c.pem"), "-days", "30", "-subj", "/CN=localhost"});
    ASSERT_EQ(openssl.wait_exit_status(30s), 0) << openssl.output();
    PreforkServer server(
        Loopback{2,
                 {"--admin", "127.0.0.1:0", "--bind", "tls:127.0.0.1:0", "--tls-cert",
                  dir.path("c.pem"), "--tls-key", dir.path("k.pem")}});
    Children children;
    HttpConnection client(server.port());
    pid_t handler_child = std::stoi(client.get("/spawn?seconds=30").body());
    children.pids.push_back(handler_child);
    // Past its dynamic loader, whose own descriptors come and go at start.
    ASSERT_TRUE(wait_until_sleeping(handler_child, 10s));

    auto kind_of = [](pid_t pid, int fd) {
        std::error_code ec;
        std::string target =
            fs::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec)
                .string();
        if (ec) return std::string("gone");           // closed while we looked: not held
        if (fd <= 2) return std::string("standard");  // stdin /dev/null, the log
        if (target.starts_with("socket:"))
            return std::string("socket");  // listeners, control, clients, admin
        if (target == "anon_inode:[eventpoll]") return std::string("epoll");    // the event loop
        if (target == "anon_inode:[eventfd]") return std::string("eventfd");    // wakes the loop
        if (target == "anon_inode:[timerfd]") return std::string("timerfd");    // the loop's timers
        if (target.starts_with("pipe:")) return std::string("signal pipe");     // Asio's signal_set
        if (target == "anon_inode:[signalfd]") return std::string("signalfd");  // the master's
        return "UNEXPECTED " + target;
    };
    auto audit = [&](pid_t pid, const std::map<std::string, int>& allowed, const std::string& who) {
        std::map<std::string, int> found;
        for (int fd : descriptors_of(pid)) {
            auto kind = kind_of(pid, fd);
            if (kind != "gone") ++found[kind];
        }
        for (const auto& [kind, count] : found) {
            auto limit = allowed.find(kind);
            EXPECT_TRUE(limit != allowed.end() && count <= limit->second)
                << who << " " << pid << " holds " << count << " x " << kind;
        }
    };
    // master: 2 control sockets (one per worker), each listener's 2 sockets (one per worker
    // slot), the admin listener; its signals come from a signalfd
    audit(server.pid(),
          {{"standard", 3},
           {"socket", 7},
           {"epoll", 1},
           {"eventfd", 1},
           {"timerfd", 1},
           {"signalfd", 1}},
          "master");
    // workers: the control socket, the two listeners, at most the one client connection
    for (pid_t worker : server.children()) {
        if (worker == handler_child) continue;
        audit(worker,
              {{"standard", 3},
               {"socket", 4},
               {"epoll", 1},
               {"eventfd", 1},
               {"timerfd", 1},
               {"signal pipe", 2}},
              "worker");
    }
    // a process a handler started: the standard three, nothing else
    audit(handler_child, {{"standard", 3}}, "handler child");
}

// The seed scenario: stop prefork while a process a handler started still runs.
void expect_port_freed_while_child_runs(int stop_signal, const std::string& start_child) {
    Children children;
    std::uint16_t port;
    {
        PreforkServer server(Loopback{2});
        port = server.port();
        // The child is started on a keep-alive connection that stays open: a forked child
        // holding it would keep the client from seeing its end.
        HttpConnection client(port, 5s);
        pid_t child = std::stoi(client.get(start_child).body());
        children.pids.push_back(child);
        // The answer may come before the child has run at all; the scenario is a child that
        // lives on, so start the clock once it is asleep.
        ASSERT_TRUE(wait_until_sleeping(child, 10s));
        server.signal(stop_signal);
        EXPECT_TRUE(eventually([&] { return port_is_free(port); }, 1s))
            << "the port is still bound a second after the stop";
        EXPECT_FALSE(process_gone(child))
            << "the child should still be running for this to prove anything";
        EXPECT_TRUE(client.closed_by_peer())
            << "the client's connection was not seen closed after the stop";
    }
}

TEST(ForkSafety, TermFreesThePortWhileASpawnedChildRuns) {
    expect_port_freed_while_child_runs(SIGTERM, "/spawn?seconds=600");
}
TEST(ForkSafety, TermFreesThePortWhileAForkedChildRuns) {
    expect_port_freed_while_child_runs(SIGTERM, "/fork?seconds=600");
}
TEST(ForkSafety, KillingTheMasterFreesThePortWhileASpawnedChildRuns) {
    expect_port_freed_while_child_runs(SIGKILL, "/spawn?seconds=600");
}
TEST(ForkSafety, KillingTheMasterFreesThePortWhileAForkedChildRuns) {
    expect_port_freed_while_child_runs(SIGKILL, "/fork?seconds=600");
}

// After a reload the old generation is gone, but what its handlers started may live on:
// it holds no listener, so a stop still frees the port.
TEST(ForkSafety, TheOldGenerationsChildrenHoldNoListenerAfterAReload) {
    Children children;
    std::uint16_t port;
    {
        PreforkServer server(Loopback{2});
        port = server.port();
        for (const char* start : {"/spawn?seconds=600", "/fork?seconds=600"}) {
            children.pids.push_back(std::stoi(http_get(port, start).body()));
            ASSERT_TRUE(wait_until_sleeping(children.pids.back(), 10s));
        }
        server.signal(SIGHUP);
        ASSERT_EQ(server.wait_for_lines("complete: the old generation has drained", 1, 20s).size(),
                  1u)
            << server.output();
        for (pid_t child : children.pids) {
            ASSERT_FALSE(process_gone(child));
            for (int fd : descriptors_of(child)) {
                std::error_code ec;
                auto target = fs::read_symlink(
                    "/proc/" + std::to_string(child) + "/fd/" + std::to_string(fd), ec);
                EXPECT_FALSE(target.string().starts_with("socket:"))
                    << "child " << child << " of the old generation holds fd " << fd << " -> "
                    << target;
            }
        }
        server.signal(SIGTERM);
        EXPECT_TRUE(eventually([&] { return port_is_free(port); }, 1s))
            << "the port is still bound a second after the stop";
        for (pid_t child : children.pids) EXPECT_FALSE(process_gone(child));
    }
}

}  // namespace
}  // namespace prefork::testing

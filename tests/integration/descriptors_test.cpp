// A worker holds exactly the descriptors it needs, and every one it opened itself is
// close-on-exec: nothing leaks into a process that a handler starts.

#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace prefork::testing {
namespace {

std::set<std::string> socket_targets(pid_t pid) {
    std::set<std::string> sockets;
    for (const auto& d : open_descriptors(pid)) {
        if (d.target.starts_with("socket:")) sockets.insert(d.target);
    }
    return sockets;
}

TEST(Descriptors, WorkerHoldsOnlyWhatItNeedsAndAllOfItIsCloseOnExec) {
    TempDir dir;
    std::string unix_path = dir.path("app.sock");
    PreforkServer server(Loopback{1, {"--bind", "unix:" + unix_path}});
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 1u);
    pid_t worker = workers[0];

    // One client connection open while we look.
    HttpConnection client(server.port());
    ASSERT_EQ(client.get("/").result_int(), 200);

    std::set<std::string> master_sockets = socket_targets(server.pid());
    std::map<std::string, int> kinds;
    for (const OpenDescriptor& d : open_descriptors(worker)) {
        SCOPED_TRACE("fd " + std::to_string(d.fd) + " -> " + d.target);
        if (d.fd == 0) {
            EXPECT_EQ(d.target, "/dev/null") << "stdin: /dev/null, given by the master";
        } else if (d.fd == 1 || d.fd == 2) {
            EXPECT_TRUE(d.target.starts_with("/tmp/prefork-test-log-"))
                << "stdout/stderr: the master's";
        } else if (d.fd == 3) {
            EXPECT_TRUE(d.target.starts_with("socket:")) << "the control socket";
            EXPECT_FALSE(master_sockets.count(d.target))
                << "the worker's own end, not the master's";
            EXPECT_TRUE(d.close_on_exec) << "made close-on-exec as the worker's first act";
        } else {
            EXPECT_TRUE(d.close_on_exec) << "every descriptor past 3 is close-on-exec";
            if (d.target.starts_with("socket:") && master_sockets.count(d.target)) {
                ++kinds["listener"];  // the master's listening sockets, shared
            } else if (d.target.starts_with("socket:")) {
                ++kinds["client connection"];
            } else if (d.target == "anon_inode:[eventpoll]") {
                ++kinds["epoll"];  // the event loop's reactor
            } else if (d.target == "anon_inode:[eventfd]") {
                ++kinds["eventfd"];  // wakes the loop when work is posted to it
            } else if (d.target == "anon_inode:[timerfd]") {
                ++kinds["timerfd"];  // the loop's timers
            } else if (d.target.starts_with("pipe:")) {
                ++kinds["signal pipe"];  // both ends of Asio's signal_set self-pipe
            } else {
                ADD_FAILURE() << "unexpected descriptor";
            }
        }
    }
    std::map<std::string, int> expected = {{"listener", 2}, {"client connection", 1},
                                           {"epoll", 1},    {"eventfd", 1},
                                           {"timerfd", 1},  {"signal pipe", 2}};
    EXPECT_EQ(kinds, expected);
}

// The client connections of a worker: its sockets past the control socket that are not the
// master's (the listeners are shared with the master).
std::set<std::string> client_sockets(pid_t worker, pid_t master) {
    std::set<std::string> master_sockets = socket_targets(master), found;
    for (const OpenDescriptor& d : open_descriptors(worker)) {
        if (d.fd > 3 && d.target.starts_with("socket:") && !master_sockets.count(d.target)) {
            found.insert(d.target);
        }
    }
    return found;
}

// A connection handed off on a reload: the new worker holds that very socket, close-on-exec
// like the rest; the master, which passed it on, keeps no copy, and nor does the old worker.
TEST(Descriptors, AHandedOffConnectionIsHeldByTheNewWorkerAlone) {
    PreforkServer server(Loopback{1});
    pid_t old_worker = server.children().at(0);
    HttpConnection client(server.port());
    ASSERT_EQ(client.get("/").result_int(), 200);
    auto connection = client_sockets(old_worker, server.pid());
    ASSERT_EQ(connection.size(), 1u);
    std::size_t master_descriptors = open_descriptors(server.pid()).size();

    server.signal(SIGHUP);
    ASSERT_EQ(server.wait_for_lines("complete: the old generation has drained", 1).size(), 1u);
    ASSERT_TRUE(wait_until_gone({old_worker}, 10s));
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 1u);
    EXPECT_EQ(client.get("/").result_int(), 200);  // served by the new worker
    EXPECT_EQ(client_sockets(workers[0], server.pid()), connection);
    for (const OpenDescriptor& d : open_descriptors(workers[0])) {
        if (d.fd > 2) {
            EXPECT_TRUE(d.close_on_exec) << "fd " << d.fd << " -> " << d.target;
        }
    }
    EXPECT_EQ(socket_targets(server.pid()).count(*connection.begin()), 0u);
    EXPECT_EQ(open_descriptors(server.pid()).size(), master_descriptors);
}

TEST(Descriptors, MasterDescriptorsAreCloseOnExec) {
    PreforkServer server(Loopback{2});
    for (const OpenDescriptor& d : open_descriptors(server.pid())) {
        if (d.fd <= 2) continue;
        EXPECT_TRUE(d.close_on_exec) << "fd " << d.fd << " -> " << d.target;
    }
}

// "Max open files  SOFT  HARD  files" of /proc/PID/limits: the soft limit, or 0.
long soft_open_file_limit(pid_t pid) {
    std::istringstream lines(read_text_file("/proc/" + std::to_string(pid) + "/limits"));
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with("Max open files")) continue;
        std::istringstream fields(line.substr(std::string("Max open files").size()));
        long soft = 0;
        fields >> soft;
        return soft;
    }
    return 0;
}

// The soft limit most shells and services start with (1024) is far below what 10000
// connections need: master and workers take what the hard limit allows, and a worker
// says so when even that is short.
TEST(Descriptors, MasterAndWorkersRaiseTheirOpenFileLimitToTheHardLimit) {
    PreforkServer server({"prlimit", "--nofile=256:4096", "--"}, Loopback{2});
    EXPECT_EQ(soft_open_file_limit(server.pid()), 4096);
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 2u);
    for (pid_t pid : workers) EXPECT_EQ(soft_open_file_limit(pid), 4096) << "worker " << pid;
    auto warnings = server.wait_for_lines(
        "the open file limit is 4096, below the 10064 descriptors that "
        "PREFORK_MAX_CONNECTIONS=10000 needs",
        2);
    EXPECT_EQ(warnings.size(), 2u) << server.output();
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200u);
}

}  // namespace
}  // namespace prefork::testing

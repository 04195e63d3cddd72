// Signals reach the process they are meant for: the master's signals sent to the whole
// process group (a terminal, a supervisor, `kill -SIG -PGID`) change nothing in a worker,
// and a worker starts with every signal at its default and none blocked.

#include "child_process.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;

std::set<pid_t> as_set(const std::vector<pid_t>& pids) {
    return {pids.begin(), pids.end()};
}

// Each pid is alive, neither stopped nor a zombie.
void expect_running(const std::set<pid_t>& pids, const std::string& after) {
    for (pid_t pid : pids) {
        char state = process_state(pid);
        EXPECT_TRUE(state != '\0' && state != 'Z' && state != 'T' && state != 't')
            << "worker " << pid << " is in state '" << state << "' after " << after;
    }
}

// Every answer of GET /pid, each on a new connection, comes from one of `pids`.
void expect_served_by(std::uint16_t port, const std::set<pid_t>& pids, const std::string& after) {
    for (int i = 0; i < 20; ++i) {
        auto response = http_get(port, "/pid");
        ASSERT_EQ(response.result_int(), 200u) << "after " << after;
        pid_t pid = std::stoi(response.body());
        EXPECT_TRUE(pids.count(pid)) << "answered by " << pid << " after " << after;
    }
}

TEST(Signals, TheMastersSignalsSentToTheProcessGroupLeaveTheWorkersServing) {
    PreforkServer server(Loopback{2});
    auto workers = as_set(server.children());
    ASSERT_EQ(workers.size(), 2u);

    ASSERT_EQ(::kill(-server.pid(), SIGUSR1), 0);
    ASSERT_EQ(server.wait_for_lines("received USR1", 1).size(), 1u) << server.output();
    expect_running(workers, "USR1 to the group");
    expect_served_by(server.port(), workers, "USR1 to the group");

    // TTIN adds a worker; TTOU then drains the youngest: the first two are still the ones.
    ASSERT_EQ(::kill(-server.pid(), SIGTTIN), 0);
    ASSERT_EQ(server.wait_for_lines("received TTIN: now 3 workers", 1).size(), 1u)
        << server.output();
    ASSERT_EQ(server.wait_for_lines(" ready (generation 1)", 3).size(), 3u) << server.output();
    expect_running(workers, "TTIN to the group");
    std::vector<pid_t> third;
    for (pid_t pid : server.children()) {
        if (!workers.count(pid)) third.push_back(pid);
    }
    ASSERT_EQ(third.size(), 1u);

    ASSERT_EQ(::kill(-server.pid(), SIGTTOU), 0);
    ASSERT_EQ(server.wait_for_lines("received TTOU: now 2 workers", 1).size(), 1u)
        << server.output();
    EXPECT_TRUE(wait_until_gone(third, 15s)) << server.output();
    expect_running(workers, "TTOU to the group");
    expect_served_by(server.port(), workers, "TTIN and TTOU to the group");
    EXPECT_EQ(server.wait_for_lines("killed by", 1, 0ms).size(), 0u) << server.output();

    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(30s), 0) << server.output();
}

TEST(Signals, HupToTheProcessGroupReloadsAndTheOldWorkersDrainInsteadOfDying) {
    PreforkServer server(Loopback{2});
    auto old_workers = server.children();
    ASSERT_EQ(old_workers.size(), 2u);

    ASSERT_EQ(::kill(-server.pid(), SIGHUP), 0);
    ASSERT_EQ(server.wait_for_lines("reload to generation 2 complete", 1, 30s).size(), 1u)
        << server.output();
    for (pid_t pid : old_workers) {
        auto exits = server.wait_for_lines("worker " + std::to_string(pid) + " (generation 1)", 1);
        ASSERT_EQ(exits.size(), 1u) << server.output();
        EXPECT_NE(exits[0].find("exited with status 0"), std::string::npos) << exits[0];
    }
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200u);

    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(30s), 0) << server.output();
}

TEST(Signals, TheMastersSignalsSentToAWorkerChangeNothing) {
    PreforkServer server(Loopback{2});
    auto workers = as_set(server.children());
    ASSERT_EQ(workers.size(), 2u);

    for (int signal : {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGWINCH}) {
        for (pid_t pid : workers) ASSERT_EQ(::kill(pid, signal), 0);
        std::string after = std::string("SIG") + ::sigabbrev_np(signal) + " to each worker";
        expect_served_by(server.port(), workers, after);
        expect_running(workers, after);
    }
    EXPECT_EQ(server.wait_for_lines("killed by", 1, 0ms).size(), 0u) << server.output();
    EXPECT_EQ(server.wait_for_lines(" started (generation", 3, 0ms).size(), 2u)
        << "a worker was replaced:\n"
        << server.output();
}

// A signal set of /proc/PID/status ("SigIgn:", "SigBlk:"), without glibc's own two signals
// (32 and 33), which no program can change through sigaction and posix_spawn leaves ignored.
std::uint64_t signal_mask(const std::string& status, const std::string& field) {
    auto at = status.find(field);
    if (at == std::string::npos) return ~0ull;
    std::uint64_t mask = std::stoull(status.substr(at + field.size()), nullptr, 16);
    return mask & ~((1ull << 31) | (1ull << 32));
}

// The master runs with signals it inherited ignored (as under nohup or a shell's trap) and
// blocks every signal while it forks; its workers get none of that.
TEST(Signals, AWorkerStartsWithEverySignalAtItsDefaultAndNoneBlocked) {
    TempDir dir("prefork-signals");
    fs::path script = dir.path("report-signals");
    fs::path report = dir.path("report");
    {
        std::ofstream out(script);
        // Built-ins only, before the shell forks anything: dash blocks every signal while it
        // forks, so a child reading the shell's status then would see them all blocked.
        out << "#!/bin/sh\n"
            << "while read -r line; do\n"
            << "  case \"$line\" in SigBlk:*|SigIgn:*) echo \"$line\" ;; esac\n"
            << "done < /proc/self/status > \"$SIGNAL_REPORT.part\"\n"
            << "mv \"$SIGNAL_REPORT.part\" \"$SIGNAL_REPORT\"\n"
            << "exec sleep 60\n";
    }
    fs::permissions(script, fs::perms::owner_all);

    // The worker never says ready: it only reports, and the test reads the report.
    ChildProcess prefork({"/bin/sh", "-c", "trap '' USR2 WINCH XFSZ; exec \"$0\" \"$@\"",
                          prefork_binary(), "--bind", "127.0.0.1:0", "--workers", "1", "--env",
                          "SIGNAL_REPORT=" + report.string(), "--", script.string()});
    ASSERT_TRUE(eventually([&] { return fs::exists(report); }, 15s)) << prefork.output();
    std::ifstream in(report);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(signal_mask(text, "SigBlk:"), 0u) << text;
    EXPECT_EQ(signal_mask(text, "SigIgn:"), 0u) << text;

    // (The master itself still ignores what it inherited: the test would mean nothing if not.)
    std::string master_status =
        read_text_file("/proc/" + std::to_string(prefork.pid()) + "/status");
    EXPECT_NE(signal_mask(master_status, "SigIgn:"), 0u) << master_status;

    prefork.signal(SIGQUIT);
    prefork.wait_exit(10s);
}

}  // namespace
}  // namespace prefork::testing

// Upgrade in place (USR2, POST /upgrade): the master re-executes the binary at the path it
// was started from, with the same pid, keeping its sockets, its workers and its counters,
// and replaces the workers as a reload does; a bad new binary changes nothing.

#include "child_process.hpp"
#include "client_load.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "sporadic_clients.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// prefork started from a directory of the test's own, so that the test can put another
// build, or a broken one, at the path the master was started from, as a deployment does:
// written beside it, then renamed over it.
class InstalledPrefork {
  public:
    InstalledPrefork() { install(prefork_binary()); }
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return dir_.path(name); }

    void install(const std::string& binary) const {
        fs::copy_file(binary, path_ + ".new", fs::copy_options::overwrite_existing);
        fs::permissions(path_ + ".new", fs::perms::owner_all);
        fs::rename(path_ + ".new", path_);
    }
    // A shell script in its place.
    void install_script(const std::string& text) const {
        dir_.write("prefork.new", text);
        fs::permissions(path_ + ".new", fs::perms::owner_all);
        fs::rename(path_ + ".new", path_);
    }
    void remove() const { fs::remove(path_); }
    void make_not_executable() const {
        fs::permissions(path_, fs::perms::owner_read | fs::perms::owner_write);
    }

  private:
    TempDir dir_{"prefork-upgrade"};
    std::string path_ = dir_.path("prefork");
};

json::object status_of(std::uint16_t admin_port) {
    return json::parse(HttpConnection(admin_port).get("/status.json").body()).as_object();
}

// The same, or an empty object while it cannot be had: what polls it during an upgrade may
// meet the exec (a connection being answered then is let go).
json::object status_now(std::uint16_t admin_port) {
    try {
        return status_of(admin_port);
    } catch (const std::exception&) {
        return {};
    }
}

std::uint64_t requests_served(const json::object& status) {
    return status.at("totals").at("requests").to_number<std::uint64_t>();
}

std::string version_of(const json::object& status) {
    return std::string(status.at("version").as_string());
}

// Whether every worker is of `generation` and ready, and there are `count` of them.
bool workers_are(const json::object& status, int generation, std::size_t count) {
    if (!status.contains("workers")) return false;
    const auto& workers = status.at("workers").as_array();
    if (workers.size() != count) return false;
    for (const auto& worker : workers) {
        if (worker.at("generation").to_number<int>() != generation ||
            worker.at("state").as_string() != "ready") {
            return false;
        }
    }
    return true;
}

std::string first_error(const std::vector<std::string>& errors) {
    return errors.empty() ? "" : errors.front();
}

// After refused upgrades: the same master, version and workers, the refusals counted.
void expect_unchanged(const PreforkServer& server, const std::string& version,
                      const std::vector<pid_t>& workers, std::size_t refused) {
    EXPECT_EQ(http_get(server.port(), "/").result_int(), 200);
    json::object status = status_of(server.admin_port());
    EXPECT_EQ(version_of(status), version);
    EXPECT_EQ(status.at("master_pid").to_number<pid_t>(), server.pid());
    EXPECT_EQ(status.at("generation").to_number<int>(), 1);
    EXPECT_EQ(status.at("upgrade").at("failures").to_number<std::size_t>(), refused);
    EXPECT_EQ(status.at("upgrade").at("upgrades").to_number<int>(), 0);
    EXPECT_EQ(server.children(), workers) << "the workers were replaced";
}

// Nothing was left half done: a good binary then upgrades.
void expect_a_good_upgrade_then(const PreforkServer& server, const InstalledPrefork& prefork,
                                const std::string& version) {
    prefork.install(prefork_next_binary());
    server.signal(SIGUSR2);
    ASSERT_EQ(server.wait_for_lines("upgrade from prefork", 1, 20s).size(), 1u) << server.output();
    EXPECT_EQ(version_of(status_of(server.admin_port())), version + "-next");
}

TEST(Upgrade, UnderLoadFailsNoRequestKeepsThePidAndTheCountersAndStartsANewGeneration) {
    InstalledPrefork prefork;
    std::string access_log = prefork.file("access.log");
    PreforkServer server(
        Loopback{2, {"--admin", "127.0.0.1:0", "--access-log", access_log}, {}, prefork.path()});
    std::uint16_t admin = server.admin_port();
    // Saturating keep-alive clients, clients that connect for every request (a refused
    // connection is a failure), and keep-alive clients that idle between requests.
    ClientLoad load(server.port(), "/", "Hello, World!", 16, 4, 60s);
    SporadicClients sporadic(server.port(), {40, 50ms, 600ms, 8s});
    // And a monitor that asks the admin endpoint without a pause: it is answered throughout.
    std::atomic<bool> monitoring{true};
    std::atomic<int> answered{0}, unanswered{0};
    std::thread monitor([&] {
        while (monitoring) {
            try {
                HttpConnection(admin).get("/healthz").result_int() == 200 ? ++answered
                                                                          : ++unanswered;
            } catch (const std::exception&) {
                ++unanswered;
            }
        }
    });
    ASSERT_TRUE(eventually([&] { return load.ok() > 500; }, 10s));
    json::object before = status_of(admin);

    prefork.install(prefork_next_binary());
    server.signal(SIGUSR2);
    ASSERT_EQ(server.wait_for_lines("upgrade from prefork", 1, 20s).size(), 1u) << server.output();
    std::uint64_t at_upgrade = load.ok();
    auto logged_at_upgrade = fs::file_size(access_log);
    EXPECT_TRUE(eventually([&] { return load.ok() > at_upgrade + 500; }, 10s));
    auto result = load.stop();
    auto idle = sporadic.wait();
    monitoring = false;
    monitor.join();
    EXPECT_GT(fs::file_size(access_log), logged_at_upgrade) << "the access log stopped";
    EXPECT_EQ(unanswered, 0) << answered << " admin requests answered";
    EXPECT_GT(answered, 100);

    EXPECT_EQ(result.failed, 0u) << first_error(result.errors);
    EXPECT_EQ(idle.failed, 0u) << first_error(idle.errors);
    EXPECT_GT(idle.requests, 100u);
    json::object after = status_of(admin);
    EXPECT_EQ(version_of(after), version_of(before) + "-next");
    EXPECT_EQ(after.at("master_pid").to_number<pid_t>(), server.pid());
    EXPECT_EQ(after.at("upgrade").at("upgrades").to_number<int>(), 1);
    EXPECT_EQ(after.at("upgrade").at("from_version").as_string(), version_of(before));
    EXPECT_EQ(after.at("upgrade").at("binary_path").as_string(), prefork.path());
    EXPECT_EQ(after.at("generation").to_number<int>(), 2);
    EXPECT_TRUE(eventually([&] { return workers_are(status_now(admin), 2, 2); }, 10s))
        << json::serialize(status_of(admin));
    EXPECT_EQ(after.at("worker_exits").at("upgrade").to_number<int>(), 2);
    // The counters go on from where they were: every request of both images is counted
    // (the workers report theirs within a second).
    std::uint64_t sent = result.ok + idle.requests;
    EXPECT_TRUE(eventually([&] { return requests_served(status_now(admin)) >= sent; }, 5s))
        << requests_served(status_now(admin)) << " counted, " << sent << " answered";
    EXPECT_GE(requests_served(after), requests_served(before));
    std::string metrics = HttpConnection(admin).get("/metrics").body();
    EXPECT_NE(metrics.find("prefork_build_info{version=\"" + version_of(before) + "-next\"} 1"),
              std::string::npos);
    EXPECT_NE(metrics.find("prefork_upgrades_total 1"), std::string::npos);
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u) << server.output();
    EXPECT_EQ(server.children().size(), 2u);
}

TEST(Upgrade, AsPid1InAPidNamespaceTheContainerLivesOn) {
    InstalledPrefork prefork;
    PreforkServer server({"unshare", "--pid", "--fork", "--mount-proc"},
                         Loopback{2, {"--admin", "127.0.0.1:0"}, {}, prefork.path()});
    auto inside = server.children();  // the master, PID 1 in its namespace
    ASSERT_EQ(inside.size(), 1u);
    pid_t master = inside[0];
    ClientLoad load(server.port(), "/", "Hello, World!", 4, 2, 30s);
    ASSERT_TRUE(eventually([&] { return load.ok() > 100; }, 10s));

    prefork.install(prefork_next_binary());
    ::kill(master, SIGUSR2);
    ASSERT_EQ(server.wait_for_lines("upgrade from prefork", 1, 20s).size(), 1u) << server.output();
    std::uint64_t at_upgrade = load.ok();
    EXPECT_TRUE(eventually([&] { return load.ok() > at_upgrade + 100; }, 10s));
    auto result = load.stop();
    EXPECT_EQ(result.failed, 0u) << first_error(result.errors);

    EXPECT_FALSE(server.wait_exit(0ms)) << "the container ended";
    EXPECT_EQ(server.children(), std::vector<pid_t>{master});
    json::object status = status_of(server.admin_port());
    EXPECT_EQ(status.at("master_pid").to_number<int>(), 1);
    EXPECT_TRUE(version_of(status).ends_with("-next")) << version_of(status);

    ::kill(master, SIGTERM);
    EXPECT_EQ(server.wait_exit_status(10s), 0) << server.output();
}

TEST(Upgrade, ABadNewBinaryChangesNothingAndTheLogSaysWhy) {
    InstalledPrefork prefork;
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}, {}, prefork.path()});
    std::uint16_t admin = server.admin_port();
    std::string version = version_of(status_of(admin));
    std::vector<pid_t> workers = server.children();
    ClientLoad load(server.port(), "/", "Hello, World!", 4, 2, 60s);

    struct Case {
        std::string what;
        std::function<void()> put_in_place;
        std::string reason;
    };
    std::vector<Case> cases = {
        {"missing", [&] { prefork.remove(); }, prefork.path() + ": No such file or directory"},
        {"not executable",
         [&] {
             prefork.install(prefork_next_binary());
             prefork.make_not_executable();
         },
         prefork.path() + " is not an executable file"},
        {"crashing at its check", [&] { prefork.install_script("#!/bin/sh\nkill -SEGV $$\n"); },
         "--check killed by SIGSEGV"},
        {"refusing the configuration",
         [&] {
             prefork.install_script(
                 "#!/bin/sh\necho 'prefork: option --bind: no such address' >&2\nexit 2\n");
         },
         "--check exited with status 2: prefork: option --bind: no such address"},
        {"not a prefork", [&] { prefork.install_script("#!/bin/sh\nexit 0\n"); },
         "not a prefork binary"},
        {"a prefork that cannot take over",
         [&] {
             prefork.install_script(
                 "#!/bin/sh\necho 'prefork 0.0.9: the configuration is valid'\nexit 0\n");
         },
         "prefork 0.0.9 at " + prefork.path() + " cannot take over from this master"},
        {"hanging at its check", [&] { prefork.install_script("#!/bin/sh\nexec sleep 60\n"); },
         "--check did not answer within 5s"},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(cases[i].what);
        cases[i].put_in_place();
        server.signal(SIGUSR2);
        auto failed =
            server.wait_for_lines("upgrade failed, the running master stays: ", i + 1, 15s);
        ASSERT_EQ(failed.size(), i + 1) << server.output();
        EXPECT_NE(failed.back().find(cases[i].reason), std::string::npos) << failed.back();
        EXPECT_EQ(http_get(server.port(), "/").result_int(), 200);
    }
    auto result = load.stop();
    EXPECT_EQ(result.failed, 0u) << first_error(result.errors);
    expect_unchanged(server, version, workers, cases.size());
    expect_a_good_upgrade_then(server, prefork, version);
}

// The check passed, then the exec itself fails: here the new binary is opened for writing
// once its check has started (Linux refuses to exec a file open for writing, ETXTBSY).
TEST(Upgrade, AnExecThatFailsLeavesTheOldImageRunning) {
    InstalledPrefork prefork;
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}, {}, prefork.path()});
    std::uint16_t admin = server.admin_port();
    std::string version = version_of(status_of(admin));
    std::vector<pid_t> workers = server.children();
    std::string checking = prefork.file("checking");
    prefork.install_script("#!/bin/sh\n[ \"$1\" = --check ] && touch " + checking +
                           " && sleep 1\nexec " + prefork_next_binary() + " \"$@\"\n");
    server.signal(SIGUSR2);
    ASSERT_TRUE(eventually([&] { return fs::exists(checking); }, 10s)) << server.output();
    int writer = ::open(prefork.path().c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(writer, 0);
    auto failed = server.wait_for_lines("upgrade failed, the running master stays: ", 1, 15s);
    ::close(writer);
    ASSERT_EQ(failed.size(), 1u) << server.output();
    EXPECT_NE(failed[0].find("execve(" + prefork.path() + "): Text file busy"), std::string::npos)
        << failed[0];

    expect_unchanged(server, version, workers, 1);
    for (const OpenDescriptor& d : open_descriptors(server.pid())) {
        EXPECT_TRUE(d.fd <= 2 || d.close_on_exec) << "fd " << d.fd << " -> " << d.target;
    }
    expect_a_good_upgrade_then(server, prefork, version);
}

TEST(Upgrade, OfTheMasterAloneKeepsTheWorkersWhichItThenSupervises) {
    InstalledPrefork prefork;
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}, {}, prefork.path()});
    std::uint16_t admin = server.admin_port();
    std::vector<pid_t> workers = server.children();
    ClientLoad load(server.port(), "/", "Hello, World!", 4, 2, 60s);

    prefork.install(prefork_next_binary());
    ChildProcess ctl({preforkctl_binary(), "--admin", "127.0.0.1:" + std::to_string(admin),
                      "upgrade", "--keep-workers"});
    EXPECT_EQ(ctl.wait_exit_status(10s), 0) << ctl.output();
    EXPECT_NE(ctl.output().find("upgrading"), std::string::npos) << ctl.output();
    ASSERT_EQ(server.wait_for_lines("upgrade from prefork", 1, 20s).size(), 1u) << server.output();
    json::object status = status_of(admin);
    EXPECT_TRUE(version_of(status).ends_with("-next"));
    EXPECT_EQ(status.at("generation").to_number<int>(), 1);
    EXPECT_EQ(server.children(), workers) << "the workers were replaced";
    auto result = load.stop();
    EXPECT_EQ(result.failed, 0u) << first_error(result.errors);

    // The new image supervises them: a worker that dies is reaped and replaced, a reload
    // replaces them all.
    ::kill(workers[0], SIGKILL);
    EXPECT_EQ(server.wait_for_lines("killed by SIGKILL", 1, 10s).size(), 1u) << server.output();
    EXPECT_TRUE(eventually([&] { return workers_are(status_now(admin), 1, 2); }, 10s));
    server.signal(SIGHUP);
    EXPECT_TRUE(eventually([&] { return workers_are(status_now(admin), 2, 2); }, 15s))
        << server.output();
    EXPECT_EQ(status_of(admin).at("worker_exits").at("crash").to_number<int>(), 1);
}

TEST(Upgrade, AnUpgradeOrReloadAskedForDuringAnUpgradeFollowsIt) {
    InstalledPrefork prefork;
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}, {}, prefork.path()});
    std::uint16_t admin = server.admin_port();
    // A new binary whose check takes a second: long enough to be asked again meanwhile.
    prefork.install_script("#!/bin/sh\n[ \"$1\" = --check ] && sleep 1\nexec " +
                           prefork_next_binary() + " \"$@\"\n");
    server.signal(SIGUSR2);
    ASSERT_EQ(server.wait_for_lines("upgrade: checking", 1, 10s).size(), 1u);
    server.signal(SIGUSR2);
    EXPECT_EQ(server.wait_for_lines("during an upgrade: an upgrade follows it", 1, 5s).size(), 1u)
        << server.output();
    server.signal(SIGHUP);
    EXPECT_EQ(server.wait_for_lines("received HUP during an upgrade", 1, 5s).size(), 1u)
        << server.output();
    EXPECT_EQ(server.wait_for_lines("reload: starting generation", 1, 0ms).size(), 0u)
        << "the HUP reloaded during the check";

    // The upgrade (generation 2, whose start reads the configuration anew: the HUP's
    // reload), then the second upgrade (3), one at a time.
    EXPECT_EQ(server.wait_for_lines("upgrade from prefork", 2, 30s).size(), 2u) << server.output();
    EXPECT_TRUE(eventually([&] { return workers_are(status_now(admin), 3, 2); }, 15s))
        << json::serialize(status_of(admin));
    json::object status = status_of(admin);
    EXPECT_EQ(status.at("upgrade").at("upgrades").to_number<int>(), 2);
    EXPECT_EQ(status.at("reloads").to_number<int>(), 0) << "a reload more than the upgrade's";
    EXPECT_EQ(status.at("master_pid").to_number<pid_t>(), server.pid());
}

// A signal that comes while the exec is under way (here: while the new image takes a second
// to start) waits for the new image, which acts on it.
TEST(Upgrade, ATermThatComesDuringTheExecStopsTheNewImage) {
    InstalledPrefork prefork;
    PreforkServer server(Loopback{2, {}, {}, prefork.path()});
    prefork.install(slow_start_binary());
    server.signal(SIGUSR2);
    ASSERT_EQ(server.wait_for_lines("upgrade: execve", 1, 10s).size(), 1u) << server.output();
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(20s), 0) << server.output();
    EXPECT_EQ(server.wait_for_lines("upgraded in place", 1, 0ms).size(), 1u) << server.output();
    EXPECT_EQ(server.wait_for_lines("received TERM: stopping gracefully", 1, 0ms).size(), 1u)
        << server.output();
}

// What kinds of descriptors a process holds, and how many of each.
std::map<std::string, int> kinds_of_descriptors(pid_t pid) {
    std::map<std::string, int> kinds;
    for (const OpenDescriptor& d : open_descriptors(pid)) {
        std::string kind = d.target.substr(0, d.target.find_first_of(":["));
        ++kinds[d.fd <= 2 ? "standard" : kind];
    }
    return kinds;
}

TEST(Upgrade, AfterAnUpgradeEveryDescriptorIsCloseOnExecAndNoneIsLeaked) {
    InstalledPrefork prefork;
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}, {}, prefork.path()});
    std::uint16_t admin = server.admin_port();
    auto before = kinds_of_descriptors(server.pid());

    prefork.install(prefork_next_binary());
    server.signal(SIGUSR2);
    ASSERT_EQ(server.wait_for_lines("upgrade from prefork", 1, 20s).size(), 1u) << server.output();
    ASSERT_TRUE(eventually([&] { return workers_are(status_now(admin), 2, 2); }, 10s));
    ASSERT_TRUE(eventually([&] { return server.children().size() == 2; }, 10s));

    // The same descriptors as before (listeners, admin endpoint, a control socket per
    // worker, the event loop's), the state's memfd not among them.
    EXPECT_TRUE(eventually([&] { return kinds_of_descriptors(server.pid()) == before; }, 5s));
    std::vector<pid_t> processes = server.children();
    processes.push_back(server.pid());
    for (pid_t pid : processes) {
        for (const OpenDescriptor& d : open_descriptors(pid)) {
            if (d.fd <= 2) continue;
            EXPECT_TRUE(d.close_on_exec) << pid << ": fd " << d.fd << " -> " << d.target;
            EXPECT_EQ(d.target.find("memfd:"), std::string::npos) << pid << ": fd " << d.fd;
        }
    }
}

}  // namespace
}  // namespace prefork::testing

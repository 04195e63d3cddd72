// Without --workers, prefork starts as many workers as the CPUs it may use: in a container,
// its cgroup's CPU limit, not the host's count of cores.

#include "child_process.hpp"
#include "eventually.hpp"
#include "prefork_server.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;

bool write_file(const std::string& path, const std::string& text) {
    std::ofstream file(path);
    file << text << std::flush;
    return static_cast<bool>(file);
}

// A cgroup of the test's own with a quota of one CPU (cgroup v1's cpu controller, or
// cgroup v2 with cpu enabled), removed at the end; empty when this machine lets the test
// create none (tools/test runs as root on Debian 12, where it can).
class OneCpuCgroup {
  public:
    OneCpuCgroup() {
        std::string name = "prefork-test-" + std::to_string(::getpid());
        if (fs::exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")) {
            std::string dir = "/sys/fs/cgroup/cpu/" + name;
            if (::mkdir(dir.c_str(), 0755) == 0) {
                path_ = dir;
                if (!write_file(dir + "/cpu.cfs_period_us", "100000") ||
                    !write_file(dir + "/cpu.cfs_quota_us", "100000")) {
                    path_.clear();
                    ::rmdir(dir.c_str());
                }
            }
        } else if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
            write_file("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
            std::string dir = "/sys/fs/cgroup/" + name;
            if (::mkdir(dir.c_str(), 0755) == 0) {
                path_ = dir;
                if (!write_file(dir + "/cpu.max", "100000 100000")) {
                    path_.clear();
                    ::rmdir(dir.c_str());
                }
            }
        }
    }
    ~OneCpuCgroup() {
        if (!path_.empty()) ::rmdir(path_.c_str());  // empty by now: its processes are gone
    }
    OneCpuCgroup(const OneCpuCgroup&) = delete;
    OneCpuCgroup& operator=(const OneCpuCgroup&) = delete;

    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

TEST(WorkerCount, InACgroupWithAOneCpuQuotaPreforkStartsOneWorker) {
    OneCpuCgroup cgroup;
    ASSERT_FALSE(cgroup.path().empty())
        << "cannot create a cgroup with a CPU quota (run the suite as root, with a writable "
           "cgroup hierarchy, as tools/test does)";
    // The shell moves itself into the cgroup, then becomes prefork: the workers follow.
    ChildProcess prefork({"sh", "-c", "echo $$ > \"$0\"/cgroup.procs && exec \"$@\"", cgroup.path(),
                          prefork_binary(), "--bind", "127.0.0.1:0", "--", demo_binary()});
    // (An ancestor with a smaller limit would be named instead: one worker all the same.)
    auto started = prefork.wait_for_lines("starting 1 worker (the CPU limit of cgroup", 1);
    ASSERT_EQ(started.size(), 1u) << prefork.output();
    EXPECT_EQ(prefork.wait_for_lines("ready (generation 1)", 1).size(), 1u) << prefork.output();
    EXPECT_EQ(prefork.children().size(), 1u);
}

// Outside any CPU limit: the CPUs of prefork's affinity mask, not the host's count.
TEST(WorkerCount, WithoutALimitTheWorkersAreTheCpusPreforkMayRunOn) {
    ChildProcess prefork(
        {"taskset", "-c", "0", prefork_binary(), "--bind", "127.0.0.1:0", "--", demo_binary()});
    auto started = prefork.wait_for_lines("starting ", 1);
    ASSERT_EQ(started.size(), 1u) << prefork.output();
    // A cgroup limit above it is bounded by it too: one CPU, one worker, either way.
    EXPECT_NE(started[0].find("starting 1 worker ("), std::string::npos) << started[0];
    EXPECT_TRUE(prefork.wait_for_children(1));
}

}  // namespace
}  // namespace prefork::testing

#include "cpu_limit.hpp"

#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <sched.h>

#include <algorithm>
#include <filesystem>

namespace prefork::master {
namespace {

// A cgroup tree of our own: what /proc/self/cgroup and /proc/self/mountinfo would say, and
// the controller files under a fake mount point.
class FakeCgroups {
  public:
    FakeCgroups(const std::string& self_cgroup, const std::string& mount_line) {
        dir_.write("cgroup", self_cgroup);
        std::string line = mount_line;
        line.replace(line.find("MOUNT"), 5, dir_.path("mnt"));
        dir_.write("mountinfo", "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" + line + "\n");
    }
    void set(const std::string& cgroup, const std::string& file, const std::string& text) {
        std::filesystem::create_directories(dir_.path("mnt") + cgroup);
        dir_.write("mnt" + cgroup + "/" + file, text + "\n");
    }
    CgroupFiles files() const { return {dir_.path("cgroup"), dir_.path("mountinfo")}; }
    std::string mount() const { return dir_.path("mnt"); }

  private:
    testing::TempDir dir_{"prefork-cgroups"};
};

int affinity_cpus() {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    EXPECT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
    return CPU_COUNT(&allowed);
}

TEST(CpuLimit, CgroupV2QuotaIsRoundedUp) {
    FakeCgroups cgroups("0::/kubepods/pod1/app\n",
                        "30 25 0:26 / MOUNT rw,nosuid - cgroup2 cgroup2 rw");
    cgroups.set("/kubepods/pod1/app", "cpu.max", "150000 100000");
    cgroups.set("/kubepods/pod1", "cpu.max", "max 100000");
    auto count = default_worker_count(cgroups.files());
    EXPECT_EQ(count.workers, std::min(2, affinity_cpus()));
    EXPECT_NE(count.source.find(cgroups.mount() + "/kubepods/pod1/app"), std::string::npos)
        << count.source;
    EXPECT_NE(count.source.find("1.5 CPUs"), std::string::npos) << count.source;
}

// Every ancestor's limit applies: the smallest one counts, and never fewer than 1 worker.
TEST(CpuLimit, TheSmallestLimitOnThePathToTheRootCountsAndAtLeastOneWorker) {
    FakeCgroups cgroups("0::/kubepods/pod1/app\n",
                        "30 25 0:26 / MOUNT rw,nosuid - cgroup2 cgroup2 rw");
    cgroups.set("/kubepods/pod1/app", "cpu.max", "max 100000");
    cgroups.set("/kubepods/pod1", "cpu.max", "25000 100000");
    cgroups.set("/kubepods", "cpu.max", "400000 100000");
    auto limit = cgroup_cpu_limit(cgroups.files());
    ASSERT_TRUE(limit);
    EXPECT_DOUBLE_EQ(limit->cpus, 0.25);
    EXPECT_EQ(limit->cgroup, cgroups.mount() + "/kubepods/pod1");
    EXPECT_EQ(default_worker_count(cgroups.files()).workers, 1);
}

// cgroup v1, as a container sees it: the mount's root is the container's own cgroup.
TEST(CpuLimit, CgroupV1QuotaOverPeriodInsideAContainer) {
    FakeCgroups cgroups("5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
                        "40 30 0:35 /docker/abc MOUNT rw,nosuid - cgroup cgroup rw,cpu,cpuacct");
    cgroups.set("", "cpu.cfs_quota_us", "300000");
    cgroups.set("", "cpu.cfs_period_us", "100000");
    auto count = default_worker_count(cgroups.files());
    EXPECT_EQ(count.workers, std::min(3, affinity_cpus()));
    if (affinity_cpus() < 3) {  // and no more than the CPUs it may run on
        EXPECT_NE(count.source.find("but prefork may run on"), std::string::npos) << count.source;
    }
}

// mountinfo escapes a space as \040; of two mounts of the hierarchy, the one that shows the
// process's cgroup counts; "/docker/abcd" is not under a mount of "/docker/abc".
TEST(CpuLimit, MountinfoIsReadAsTheKernelWritesIt) {
    FakeCgroups cgroups("0::/docker/abcd/app\n",
                        "30 25 0:26 /docker/abc /elsewhere rw - cgroup2 cgroup2 rw\n"
                        "31 25 0:26 / MOUNT rw,nosuid - cgroup2 cgroup2 rw");
    cgroups.set("/docker/abcd/app", "cpu.max", "100000 100000");
    auto limit = cgroup_cpu_limit(cgroups.files());
    ASSERT_TRUE(limit);
    EXPECT_EQ(limit->cgroup, cgroups.mount() + "/docker/abcd/app");

    FakeCgroups spaced("0::/my app\n", "31 25 0:26 / MOUNT rw,nosuid - cgroup2 cgroup2 rw");
    spaced.set("/my app", "cpu.max", "200000 100000");
    // The fake mountinfo holds the mount point as is; the cgroup path in it is escaped.
    FakeCgroups escaped("0::/my app\n",
                        "31 25 0:26 /my\\040app MOUNT rw,nosuid - cgroup2 cgroup2 rw");
    escaped.set("", "cpu.max", "300000 100000");
    auto spaced_limit = cgroup_cpu_limit(spaced.files());
    ASSERT_TRUE(spaced_limit);
    EXPECT_DOUBLE_EQ(spaced_limit->cpus, 2);
    auto escaped_limit = cgroup_cpu_limit(escaped.files());
    ASSERT_TRUE(escaped_limit) << "the mount root \\040 is a space";
    EXPECT_DOUBLE_EQ(escaped_limit->cpus, 3);
}

TEST(CpuLimit, NoLimitMeansTheCpusPreforkMayRunOn) {
    FakeCgroups cgroups("4:cpu,cpuacct:/\n",
                        "40 30 0:35 / MOUNT rw,nosuid - cgroup cgroup rw,cpu,cpuacct");
    cgroups.set("", "cpu.cfs_quota_us", "-1");
    cgroups.set("", "cpu.cfs_period_us", "100000");
    EXPECT_FALSE(cgroup_cpu_limit(cgroups.files()));
    auto count = default_worker_count(cgroups.files());
    EXPECT_EQ(count.workers, affinity_cpus());
    EXPECT_NE(count.source.find("may run on"), std::string::npos) << count.source;
}

TEST(CpuLimit, NoCgroupFilesAtAllMeansTheCpusPreforkMayRunOn) {
    CgroupFiles nowhere{"/nonexistent/cgroup", "/nonexistent/mountinfo"};
    EXPECT_FALSE(cgroup_cpu_limit(nowhere));
    EXPECT_EQ(default_worker_count(nowhere).workers, affinity_cpus());
}

}  // namespace
}  // namespace prefork::master

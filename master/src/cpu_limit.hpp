#pragma once

// How many workers prefork starts when --workers is not given (or is `auto`): as many as
// the CPUs it may use, which in a container is its cgroup's CPU limit, not the host's
// count of cores.

#include <optional>
#include <string>

namespace prefork::master {

struct WorkerCount {
    int workers = 1;
    std::string source;  // for the start log: where the number came from
};

// Where the kernel says what applies to this process (replaced by tests).
struct CgroupFiles {
    std::string self_cgroup = "/proc/self/cgroup";
    std::string mountinfo = "/proc/self/mountinfo";
};

// The CPU limit of this process's cgroup, in CPUs (cgroup v2 `cpu.max`, or v1
// `cpu.cfs_quota_us` / `cpu.cfs_period_us`; the smallest along the path to the root of
// the hierarchy, since every ancestor's limit applies too), and the cgroup it came from;
// nullopt when there is none.
struct CpuLimit {
    double cpus = 0;
    std::string cgroup;  // the directory whose limit it is
};
std::optional<CpuLimit> cgroup_cpu_limit(const CgroupFiles& files = {});

// The CPU limit rounded up (at least 1, and no more than the CPUs of this process's
// affinity mask), or else the CPUs of its affinity mask (sched_getaffinity), or else 1.
WorkerCount default_worker_count(const CgroupFiles& files = {});

}  // namespace prefork::master

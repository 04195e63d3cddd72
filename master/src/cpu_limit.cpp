#include "cpu_limit.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

namespace prefork::master {
namespace {

std::string first_line(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);
    return line;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    return parts;
}

// mountinfo writes a space, a tab, a newline and a backslash in a path as \040, \011, \012
// and \134.
std::string unescaped(const std::string& field) {
    auto octal = [&](std::size_t at) { return field[at] >= '0' && field[at] <= '7'; };
    std::string out;
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size() && octal(i + 1) && octal(i + 2) &&
            octal(i + 3)) {
            out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                     (field[i + 3] - '0'));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

// `path` is `root` or below it, component by component ("/a/b" is under "/a", "/ab" is not).
bool is_under(const std::string& path, const std::string& root) {
    if (root == "/") return path.starts_with("/");
    return path == root || (path.starts_with(root) && path[root.size()] == '/');
}

// A cgroup hierarchy this process is in: where it is mounted, the part of the cgroup tree
// the mount shows (a container sees its own cgroup as the root), and the process's path.
struct Hierarchy {
    std::string mount_point;
    std::string mount_root;
    std::string path;
};

// The hierarchy with the cpu controller: cgroup v1's "cpu" if mounted, else cgroup v2's.
std::optional<Hierarchy> cpu_hierarchy(const CgroupFiles& files, bool& v2) {
    std::string v1_path, v2_path;
    bool have_v1 = false, have_v2 = false;
    std::ifstream cgroups(files.self_cgroup);
    for (std::string line; std::getline(cgroups, line);) {
        // "ID:controller,controller:path"; cgroup v2 is "0::path".
        auto first = line.find(':'), second = line.find(':', first + 1);
        if (first == std::string::npos || second == std::string::npos) continue;
        std::string controllers = line.substr(first + 1, second - first - 1);
        std::string path = line.substr(second + 1);
        if (controllers.empty()) {
            v2_path = path;
            have_v2 = true;
        }
        for (const auto& controller : split(controllers, ',')) {
            if (controller == "cpu") {
                v1_path = path;
                have_v1 = true;
            }
        }
    }
    std::ifstream mounts(files.mountinfo);
    std::optional<Hierarchy> v2_hierarchy;
    for (std::string line; std::getline(mounts, line);) {
        // "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS"
        auto dash = line.find(" - ");
        if (dash == std::string::npos) continue;
        auto before = split(line.substr(0, dash), ' ');
        auto after = split(line.substr(dash + 3), ' ');
        if (before.size() < 5 || after.size() < 3) continue;
        std::string root = unescaped(before[3]), mount_point = unescaped(before[4]);
        const std::string& type = after[0];
        // Of several mounts of a hierarchy (bind mounts in nested containers), one that shows
        // the process's own cgroup.
        if (type == "cgroup" && have_v1 && is_under(v1_path, root)) {
            for (const auto& option : split(after[2], ',')) {
                if (option == "cpu") return Hierarchy{mount_point, root, v1_path};
            }
        }
        if (type == "cgroup2" && have_v2 && !v2_hierarchy && is_under(v2_path, root)) {
            v2_hierarchy = Hierarchy{mount_point, root, v2_path};
        }
    }
    v2 = v2_hierarchy.has_value();
    return v2_hierarchy;
}

// The limit set on one cgroup directory, in CPUs; nullopt when it has none.
std::optional<double> limit_of(const std::string& directory, bool v2) {
    if (v2) {
        auto fields =
            split(first_line(directory + "/cpu.max"), ' ');  // "max 100000", "150000 100000"
        if (fields.size() != 2 || fields[0] == "max") return std::nullopt;
        double quota = std::strtod(fields[0].c_str(), nullptr);
        double period = std::strtod(fields[1].c_str(), nullptr);
        if (quota <= 0 || period <= 0) return std::nullopt;
        return quota / period;
    }
    double quota = std::strtod(first_line(directory + "/cpu.cfs_quota_us").c_str(), nullptr);
    double period = std::strtod(first_line(directory + "/cpu.cfs_period_us").c_str(), nullptr);
    if (quota <= 0 || period <= 0) return std::nullopt;  // -1: no limit
    return quota / period;
}

}  // namespace

std::optional<CpuLimit> cgroup_cpu_limit(const CgroupFiles& files) {
    bool v2 = false;
    auto hierarchy = cpu_hierarchy(files, v2);
    if (!hierarchy) return std::nullopt;
    std::string relative = hierarchy->path;
    if (hierarchy->mount_root != "/") relative = relative.substr(hierarchy->mount_root.size());
    if (relative.find("/..") != std::string::npos) return std::nullopt;  // not below the mount
    std::optional<CpuLimit> smallest;
    // From the process's own cgroup up to the root of what is mounted.
    for (std::string at = relative;;) {
        std::string directory = hierarchy->mount_point + (at == "/" ? "" : at);
        if (auto cpus = limit_of(directory, v2); cpus && (!smallest || *cpus < smallest->cpus)) {
            smallest = CpuLimit{*cpus, directory};
        }
        if (at.empty() || at == "/") break;
        auto slash = at.find_last_of('/');
        at = slash == 0 || slash == std::string::npos ? "/" : at.substr(0, slash);
    }
    return smallest;
}

WorkerCount default_worker_count(const CgroupFiles& files) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    int affinity = ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 0;
    if (affinity == 0) {  // more CPUs than a cpu_set_t holds: the ones online
        long online = ::sysconf(_SC_NPROCESSORS_ONLN);
        affinity = online > 0 ? static_cast<int>(std::min(online, 1024L)) : 0;
    }
    if (auto limit = cgroup_cpu_limit(files)) {
        double rounded = std::clamp(std::ceil(limit->cpus - 1e-9), 1.0, 1024.0);
        int workers = static_cast<int>(rounded);
        std::ostringstream source;
        source << "the CPU limit of cgroup " << limit->cgroup << ", " << limit->cpus << " CPU"
               << (limit->cpus == 1 ? "" : "s");
        if (affinity == 0 || workers <= affinity) return {workers, source.str()};
        source << ", but prefork may run on " << affinity;
        return {affinity, source.str()};
    }
    if (affinity > 0) {
        return {affinity, "the " + std::to_string(affinity) + " CPU" + (affinity == 1 ? "" : "s") +
                              " prefork may run on"};
    }
    return {1, "no CPU count found"};
}

}  // namespace prefork::master

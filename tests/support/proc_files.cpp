// What /proc tells about processes, and whether a loopback port is free.
#include "proc_files.hpp"

#include "eventually.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace prefork::testing {

std::string read_text_file(const std::string& path) {
    std::string text;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return text;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

std::vector<OpenDescriptor> open_descriptors(pid_t pid) {
    std::vector<OpenDescriptor> found;
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* listing = ::opendir(dir.c_str());
    if (listing == nullptr) return found;
    while (dirent* entry = ::readdir(listing)) {
        if (entry->d_name[0] == '.') continue;
        int fd = std::stoi(entry->d_name);
        char target[256] = {};
        ssize_t n = ::readlink((dir + "/" + entry->d_name).c_str(), target, sizeof(target) - 1);
        if (n < 0) continue;
        std::istringstream info(
            read_text_file("/proc/" + std::to_string(pid) + "/fdinfo/" + entry->d_name));
        std::string key, flags;
        while (info >> key && key != "flags:") {
        }
        if (!(info >> flags)) continue;                                  // closed while we looked
        bool cloexec = (std::stoul(flags, nullptr, 8) & 02000000) != 0;  // O_CLOEXEC
        found.push_back({fd, target, cloexec});
    }
    ::closedir(listing);
    return found;
}

std::vector<pid_t> child_pids(pid_t parent) {
    std::vector<pid_t> pids;
    std::istringstream in(read_text_file("/proc/" + std::to_string(parent) + "/task/" +
                                         std::to_string(parent) + "/children"));
    for (pid_t pid; in >> pid;) pids.push_back(pid);
    return pids;
}

std::vector<pid_t> zombie_children(pid_t parent) {
    std::vector<pid_t> zombies;
    for (pid_t pid : child_pids(parent)) {
        if (process_state(pid) == 'Z') zombies.push_back(pid);
    }
    return zombies;
}

char process_state(pid_t pid) {
    std::string text = read_text_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = text.rfind(')');  // the name in parentheses may hold anything
    if (close == std::string::npos || close + 2 >= text.size()) return '\0';
    return text[close + 2];
}

bool wait_until_sleeping(pid_t pid, std::chrono::milliseconds timeout) {
    return eventually([&] { return process_state(pid) == 'S'; }, timeout);
}

namespace {

// Whether the thread whose /proc/.../syscall this is sleeps in nanosleep or clock_nanosleep.
bool in_nanosleep(const std::string& syscall_path) {
    // "NUMBER ARGS..." while in a system call; "running" or "-1 ..." otherwise. glibc's
    // sleeps (nanosleep, sleep_for) are the clock_nanosleep system call; the plain nanosleep
    // one is what a sanitizer's own threads sleep in (ThreadSanitizer's background thread,
    // always there once a worker has started a thread), which must not count.
    std::istringstream fields(read_text_file(syscall_path));
    long number = -1;
    return fields >> number && number == SYS_clock_nanosleep;
}

}  // namespace

bool wait_until_in_nanosleep(pid_t pid, std::chrono::milliseconds timeout) {
    const std::string path = "/proc/" + std::to_string(pid) + "/syscall";
    return eventually([&] { return in_nanosleep(path); }, timeout);
}

std::size_t threads_in_nanosleep(pid_t pid) {
    std::size_t sleeping = 0;
    std::error_code ec;  // the process may end meanwhile: never throws
    for (std::filesystem::directory_iterator task("/proc/" + std::to_string(pid) + "/task", ec);
         !ec && task != std::filesystem::directory_iterator(); task.increment(ec)) {
        if (in_nanosleep(task->path().string() + "/syscall")) ++sleeping;
    }
    return sleeping;
}

std::uint64_t resident_kib(pid_t pid) {
    std::istringstream status(read_text_file("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6));
    }
    return 0;
}

bool process_gone(pid_t pid) {
    char state = process_state(pid);
    return state == '\0' || state == 'Z' || state == 'X';
}

bool wait_until_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
    return eventually(
        [&] {
            bool all_gone = true;
            for (pid_t pid : pids) all_gone = all_gone && process_gone(pid);
            return all_gone;
        },
        timeout);
}

bool port_is_free(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                 ::listen(fd, 1) == 0;
    ::close(fd);
    return bound;
}

std::set<int> listed_descriptors(const std::string& listing) {
    std::set<int> fds;
    std::istringstream lines(listing);
    for (std::string line; std::getline(lines, line);) fds.insert(std::stoi(line));
    return fds;
}

}  // namespace prefork::testing

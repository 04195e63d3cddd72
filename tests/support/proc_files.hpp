// What /proc tells about processes (children, state, memory, what they wait in), and
// whether a loopback port is free.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace prefork::testing {

// The descriptor numbers of a listing of "N -> target" lines (/child-fds answers).
std::set<int> listed_descriptors(const std::string& listing);

// The whole text of a file under /proc (or anywhere), or "" when it cannot be read. Unlike
// an ifstream, never throws: reading /proc/PID/... of a process that is being reaped fails
// with ESRCH, which libstdc++'s filebuf turns into an exception.
std::string read_text_file(const std::string& path);

// A descriptor a process holds: what /proc/PID/fd/N points to, and whether it is
// close-on-exec (/proc/PID/fdinfo/N).
struct OpenDescriptor {
    int fd;
    std::string target;
    bool close_on_exec;
};
std::vector<OpenDescriptor> open_descriptors(pid_t pid);

// The children of a process (/proc/PID/task/PID/children), zombies included.
std::vector<pid_t> child_pids(pid_t parent);
// Those of them that are zombies (ended, not reaped).
std::vector<pid_t> zombie_children(pid_t parent);

// The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or '\0' when there is none.
char process_state(pid_t pid);
// Waits until the process sleeps ('S'): a child that has started its work and, for a forked
// child, has run the pthread_atfork child handlers. False when it did not within `timeout`.
bool wait_until_sleeping(pid_t pid, std::chrono::milliseconds timeout);
// Waits until the process's main thread sleeps in glibc's nanosleep (the clock_nanosleep
// system call: a handler that blocks its worker with a sleep, as the demo's /block does, has
// started). False when it was not within `timeout`.
bool wait_until_in_nanosleep(pid_t pid, std::chrono::milliseconds timeout);
// How many of the process's threads sleep in glibc's nanosleep (jobs of a worker's offload
// pool that sleep, as the demo's /offload does, are running); a sanitizer's own threads,
// which make the plain nanosleep system call, do not count.
std::size_t threads_in_nanosleep(pid_t pid);

// A process's resident memory in KiB (VmRSS of /proc/PID/status), 0 when it is gone.
std::uint64_t resident_kib(pid_t pid);

// True when a process with this pid is gone (or only a zombie is left of it).
bool process_gone(pid_t pid);
// Waits until every pid is gone.
bool wait_until_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout);
// True when a TCP socket can be bound to 127.0.0.1:port (with SO_REUSEADDR, as any server
// would bind it).
bool port_is_free(std::uint16_t port);

}  // namespace prefork::testing

#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace prefork::testing {

using namespace std::chrono_literals;

// The paths of the binaries under test (set by CMake).
std::string prefork_binary();
std::string demo_binary();
std::string crash_worker_binary();
std::string preforkctl_binary();

// A process started by a test, in a process group of its own, with stdout and stderr
// going to a log file. The destructor kills the whole group by its pid and reaps the
// process, so nothing outlives the test, whether it passed or failed; it also fails the
// test when the log holds a sanitizer report.
class ChildProcess {
  public:
    ChildProcess(std::vector<std::string> argv, std::vector<std::string> extra_env = {},
                 int leaked_fd = -1);
    // Its stdout and stderr go to a pipe of `capacity` bytes instead, which the test copies
    // into the log and can stop reading (stall_output), as a stuck log shipper would.
    struct ThroughPipe {
        int capacity = 4096;
    };
    ChildProcess(ThroughPipe pipe, std::vector<std::string> argv,
                 std::vector<std::string> extra_env = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int signal) const;

    // The wait status once it exited within `timeout`; nullopt while it still runs.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    // Its exit status, or -1 when it did not exit normally or in time.
    int wait_exit_status(std::chrono::milliseconds timeout);

    // Everything it wrote to stdout and stderr so far.
    std::string output() const;
    // With ThroughPipe: stops reading its output (the pipe fills, its writes would block),
    // and reads again.
    void stall_output() { output_stalled_ = true; }
    void resume_output() { output_stalled_ = false; }
    // Waits until `count` lines of its output contain `needle`; returns those lines.
    std::vector<std::string> wait_for_lines(const std::string& needle, std::size_t count,
                                            std::chrono::milliseconds timeout = 10s) const;
    // Its live child processes (for the master: its workers).
    std::vector<pid_t> children() const;
    // Waits until it has `count` live children.
    bool wait_for_children(std::size_t count, std::chrono::milliseconds timeout = 15s) const;

  private:
    void spawn(std::vector<std::string> argv, std::vector<std::string> extra_env, int leaked_fd,
               int output_fd);
    void copy_output(int pipe);

    pid_t pid_ = -1;
    std::optional<int> wait_status_;
    std::string log_path_;
    std::string argv0_;
    std::thread output_copier_;
    std::atomic<bool> output_stalled_{false};
    std::atomic<bool> output_done_{false};    // stop copying
    std::atomic<bool> output_copied_{false};  // the copier has seen EOF
};

// The prefork master with the demo as its worker command.
class PreforkServer : public ChildProcess {
  public:
    // Starts `prefork ARGS -- prefork-demo` and waits until `workers` workers are ready.
    explicit PreforkServer(std::vector<std::string> args, int workers = 2,
                           std::vector<std::string> extra_env = {});
    // Starts `PREFIX... prefork ARGS -- prefork-demo` (PREFIX: e.g. unshare and its options).
    PreforkServer(std::vector<std::string> prefix, std::vector<std::string> args, int workers);
    // Starts `prefork ARGS -- WORKER_COMMAND...` (a test's own worker).
    static std::unique_ptr<PreforkServer> with_worker(std::vector<std::string> args,
                                                      std::vector<std::string> worker_command,
                                                      int workers);
    // Starts `prefork ARGS -- prefork-demo` with its output through a pipe (ThroughPipe).
    static std::unique_ptr<PreforkServer> with_output_pipe(std::vector<std::string> args,
                                                           int workers,
                                                           std::vector<std::string> extra_env);
    // Starts `prefork --config FILE`: the worker command is the file's.
    static std::unique_ptr<PreforkServer> from_config(const std::string& config_path, int workers);

    // The port of the n-th TCP listener, as the master reported it.
    std::uint16_t port(std::size_t n = 0) const;

    // Re-reads the ports the master reported (after a reload bound new ones).
    std::vector<std::uint16_t> ports() const;
    // The port of the admin endpoint (--admin 127.0.0.1:0), as the master reported it.
    std::uint16_t admin_port() const;
    // Waits until the workers have received `count` requests in all, as the admin endpoint
    // reports them: a request sent without waiting for its answer is in its handler. (A
    // worker reports its first request at once, the later ones within a second.)
    bool wait_for_requests_received(std::uint64_t count,
                                    std::chrono::milliseconds timeout = 10s) const;

  private:
    struct FromArgv {};
    PreforkServer(FromArgv, std::vector<std::string> argv, int workers);
    PreforkServer(ThroughPipe pipe, std::vector<std::string> argv, int workers,
                  std::vector<std::string> extra_env);
    void wait_until_ready(int workers);

    std::vector<std::uint16_t> ports_;
};

// The descriptor numbers of a listing of "N -> target" lines (/child-fds answers).
std::set<int> listed_descriptors(const std::string& listing);

// The whole text of a file under /proc (or anywhere), or "" when it cannot be read. Unlike
// an ifstream, never throws: reading /proc/PID/... of a process that is being reaped fails
// with ESRCH, which libstdc++'s filebuf turns into an exception.
std::string read_text_file(const std::string& path);

// The children of a process (/proc/PID/task/PID/children), zombies included.
std::vector<pid_t> child_pids(pid_t parent);
// Those of them that are zombies (ended, not reaped).
std::vector<pid_t> zombie_children(pid_t parent);

// The state letter of /proc/PID/stat ('R', 'S', 'Z', ...), or '\0' when there is none.
char process_state(pid_t pid);
// Waits until the process sleeps ('S'): a child that has started its work and, for a forked
// child, has run the pthread_atfork child handlers. False when it did not within `timeout`.
bool wait_until_sleeping(pid_t pid, std::chrono::milliseconds timeout);
// Waits until the process's main thread is in nanosleep or clock_nanosleep (a handler that
// blocks its worker with a sleep, as the demo's /block does, has started). False when it
// was not within `timeout`.
bool wait_until_in_nanosleep(pid_t pid, std::chrono::milliseconds timeout);

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

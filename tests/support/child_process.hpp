// ChildProcess: a process a test starts, in a process group of its own, with its output in
// a log the test reads; it never outlives the test.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace prefork::testing {

using namespace std::chrono_literals;

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

}  // namespace prefork::testing

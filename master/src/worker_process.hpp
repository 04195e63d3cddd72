#pragma once

#include "hang_report.hpp"

#include <prefork/common/control_channel.hpp>
#include <prefork/common/control_protocol.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefork::master {

using Clock = std::chrono::steady_clock;

// A worker process as the master sees it.
struct WorkerProcess {
    enum class State { starting, ready, draining, stopping };

    pid_t pid = 0;
    int generation = 0;
    // Its place among the workers kept up (0 to --workers - 1): a replacement takes the
    // place of the worker it replaces, so per-slot series stay as few as the workers.
    int slot = 0;
    State state = State::starting;
    Clock::time_point started_at;
    Clock::time_point last_heard;  // the last message from its event loop
    control::Heartbeat counters;
    std::uint64_t max_requests = 0;  // recycle after this many requests; 0: never
    bool retiring = false;           // serves until its replacement is ready, then drains
    bool had_traffic = false;        // it has reported a connection or a request
    bool reaped = false;             // it has exited: only its last counters still count
    std::string exit_cause;          // why it was told to go: recycle, reload, scale, stop, hang
    std::uint64_t adoptions_since_heartbeat = 0;  // connections sent its way, not yet counted
    bool accepting = true;                  // false: it said it takes no new connections for now
    Clock::time_point shed_asked_at{};      // when it was last asked to shed connections
    Clock::time_point last_heartbeat_at{};  // its counts are as of then
    bool memory_warned = false;  // above --worker-memory-limit before any traffic: said once
    std::uint64_t requests_in_flight = 0;     // the address of its table (its Ready message)
    std::unique_ptr<HangReport> hang_report;  // being read: it hung, and is killed after
    std::unique_ptr<ControlChannel> control;

    // Counts towards the number of workers the master keeps up.
    bool is_active() const {
        return (state == State::starting || state == State::ready) && !retiring;
    }
};

const char* state_name(WorkerProcess::State state);

// Throws std::runtime_error (one line: why) unless the worker command's program exists (on
// PATH when it has no '/') and may be executed.
void check_worker_command(const std::vector<std::string>& command);

// A process's resident memory in bytes (/proc/PID/statm), 0 when it cannot be read.
std::uint64_t resident_bytes(pid_t pid);

// What a new worker is started with.
struct WorkerLaunch {
    std::vector<std::string> command;      // program (resolved on PATH) and arguments
    std::vector<std::string> environment;  // NAME=VALUE added to the master's environment
    int generation = 0;
    std::string log_format = "text";
    std::string log_level = "info";
    std::string access_log;  // "-", a path, or empty: off
};

// Starts the worker command with Boost.Process (fork + exec): stdin from /dev/null,
// stdout and stderr shared with the master, the worker's end of a new control socket as
// fd 3, and nothing else inherited (every other descriptor is close-on-exec).
// Throws std::runtime_error with the reason when the command cannot be started.
WorkerProcess launch_worker(boost::asio::io_context& io, const WorkerLaunch& launch);

}  // namespace prefork::master

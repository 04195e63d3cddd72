#pragma once

#include "child_reaper.hpp"
#include "server.hpp"

#include <prefork/common/log_output.hpp>

#include <boost/asio/io_context.hpp>

namespace prefork {

class Router;

// What every worker runs on, alone or under the master: one event loop, the HTTP server on
// it, and the reaper of the processes its handlers start (made current for spawn_process
// and run_process while it exists).
class WorkerRuntime {
  public:
    explicit WorkerRuntime(const Router& router);
    ~WorkerRuntime();
    WorkerRuntime(const WorkerRuntime&) = delete;
    WorkerRuntime& operator=(const WorkerRuntime&) = delete;

    // Runs the loop until it is stopped; then closes the connections left (waking any
    // thread that waits on one of their streams), kills the processes run_process still
    // waits for (waking any thread on their futures), and stops the offload pool.
    void run();

    boost::asio::io_context io{1};
    log::LogOutput log_output{io, log::LogOutput::buffer_limit_from_environment()};
    Server server;
    ChildReaper reaper;
};

}  // namespace prefork

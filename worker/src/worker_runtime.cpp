#include "worker_runtime.hpp"

#include "offload_pool.hpp"
#include "running_processes.hpp"

#include <prefork/common/descriptor_limit.hpp>
#include <prefork/common/log.hpp>

#include <cstdlib>

namespace prefork {
namespace {

std::string access_log_setting() {
    const char* value = std::getenv("PREFORK_ACCESS_LOG");
    return value ? value : "";
}

// Descriptors a worker needs besides one per connection: listeners, the control socket,
// the event loop's own, log files, the pipes of the processes its handlers run.
constexpr std::size_t kDescriptorsBesideConnections = 64;

// The default soft limit (1024) is far below PREFORK_MAX_CONNECTIONS' default: take what
// the hard limit allows, and say so when even that is short.
void raise_descriptor_limit(const ServerLimits& limits) {
    std::size_t limit = raise_open_file_limit();
    std::size_t needed = limits.max_connections + kDescriptorsBesideConnections;
    if (limit < needed) {
        log::warning("the open file limit is ", limit, ", below the ", needed,
                     " descriptors that PREFORK_MAX_CONNECTIONS=", limits.max_connections,
                     " needs: when they run out, accepts pause (raise LimitNOFILE or ulimit -n)");
    }
}

}  // namespace

WorkerRuntime::WorkerRuntime(const Router& router)
    : server(io, router, limits_from_environment(), access_log_setting()), reaper(io) {
    raise_descriptor_limit(server.limits());
    ChildReaper::set_current(&reaper);
}

WorkerRuntime::~WorkerRuntime() {
    stop_running_processes();
    ChildReaper::set_current(nullptr);
    stop_offload_pool();
}

void WorkerRuntime::run() {
    io.run();
    server.close_all();
    stop_running_processes();
    ChildReaper::set_current(nullptr);
    stop_offload_pool();
}

}  // namespace prefork

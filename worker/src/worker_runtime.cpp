#include "worker_runtime.hpp"

#include "offload_pool.hpp"
#include "running_processes.hpp"

#include <cstdlib>

namespace prefork {
namespace {

std::string access_log_setting() {
    const char* value = std::getenv("PREFORK_ACCESS_LOG");
    return value ? value : "";
}

}  // namespace

WorkerRuntime::WorkerRuntime(const Router& router)
    : server(io, router, limits_from_environment(), access_log_setting()), reaper(io) {
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

#include "worker_process.hpp"

#include "signals_blocked.hpp"

#include <prefork/common/inherited_fds.hpp>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace prefork::master {
namespace bp = boost::process;

namespace {

// Runs in the child between fork and exec (async-signal-safe calls only): /dev/null as
// stdin and the worker's end of the control socket as fd 3. dup2 leaves just those two
// inheritable; every other descriptor is close-on-exec. Signals are blocked from before
// the fork (see SignalsBlocked): every disposition goes back to the default (the master
// ignores SIGPIPE and handles the rest) before the mask is emptied, so a signal that
// reached the child in between never runs the master's handler here.
struct WorkerDescriptors : bp::extend::handler {
    int dev_null;
    int control_socket;

    template <class Executor>
    void on_exec_setup(Executor& executor) const {
        if (::dup2(dev_null, STDIN_FILENO) < 0) executor.set_error(errno_code(), "dup2(stdin)");
        if (control_socket == control::kWorkerControlFd) {
            ::fcntl(control_socket, F_SETFD, 0);
        } else if (::dup2(control_socket, control::kWorkerControlFd) < 0) {
            executor.set_error(errno_code(), "dup2(control socket)");
        }
        restore_default_signals();
        // Whatever else is open here goes no further than exec (Boost.Process's own error
        // pipe still reports a failed exec: it is closed by the exec that succeeds).
        mark_close_on_exec_from(control::kWorkerControlFd + 1);
    }

    static std::error_code errno_code() { return {errno, std::system_category()}; }
};

boost::filesystem::path resolve_program(const std::string& program) {
    if (program.find('/') != std::string::npos) return program;
    boost::filesystem::path found = bp::search_path(program);
    if (found.empty()) throw std::runtime_error(program + ": command not found on PATH");
    return found;
}

}  // namespace

void check_worker_command(const std::vector<std::string>& command) {
    if (command.empty()) throw std::runtime_error("no worker command");
    std::string program = resolve_program(command.front()).string();
    struct stat status {};
    if (::stat(program.c_str(), &status) != 0) {
        throw std::runtime_error("the worker command " + program + ": " + std::strerror(errno));
    }
    if (!S_ISREG(status.st_mode) || ::access(program.c_str(), X_OK) != 0) {
        throw std::runtime_error("the worker command " + program + " is not an executable file");
    }
}

std::uint64_t resident_bytes(pid_t pid) {
    std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
    std::uint64_t size = 0, resident = 0;
    statm >> size >> resident;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

const char* state_name(WorkerProcess::State state) {
    switch (state) {
        case WorkerProcess::State::starting:
            return "starting";
        case WorkerProcess::State::ready:
            return "ready";
        case WorkerProcess::State::draining:
            return "draining";
        case WorkerProcess::State::stopping:
            return "stopping";
    }
    return "?";
}

WorkerProcess launch_worker(boost::asio::io_context& io, const WorkerLaunch& launch) {
    ControlSocketPair sockets = make_control_socket_pair();

    bp::environment environment = boost::this_process::environment();
    for (const std::string& pair : launch.environment) {
        auto equals = pair.find('=');
        environment[pair.substr(0, equals)] = pair.substr(equals + 1);
    }
    environment[control::kControlFdEnv] = std::to_string(control::kWorkerControlFd);
    environment["PREFORK_WORKER_GENERATION"] = std::to_string(launch.generation);
    environment["PREFORK_LOG_FORMAT"] = launch.log_format;
    environment["PREFORK_LOG_LEVEL"] = launch.log_level;
    environment["PREFORK_ACCESS_LOG"] = launch.access_log;

    UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!dev_null) throw std::system_error(errno, std::system_category(), "open(/dev/null)");

    std::vector<std::string> args(launch.command.begin() + 1, launch.command.end());
    boost::filesystem::path program = resolve_program(launch.command.front());
    std::error_code ec;
    bp::child child = [&] {
        SignalsBlocked blocked;
        return bp::child(bp::exe = program, bp::args = args, bp::env = environment,
                         WorkerDescriptors{{}, dev_null.get(), sockets.worker_end.get()}, ec);
    }();
    if (ec) throw std::runtime_error(launch.command.front() + ": " + ec.message());
    child.detach();  // the supervisor reaps with waitpid(), for workers and orphans alike

    WorkerProcess worker;
    worker.pid = child.id();
    worker.generation = launch.generation;
    worker.started_at = worker.last_heard = Clock::now();
    worker.control = std::make_unique<ControlChannel>(io, std::move(sockets.master_end));
    return worker;
}

}  // namespace prefork::master

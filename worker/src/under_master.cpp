#include "control_client.hpp"
#include "fork_guard.hpp"
#include "run_modes.hpp"
#include "worker_runtime.hpp"

#include <prefork/common/control_protocol.hpp>
#include <prefork/common/descriptor_limit.hpp>
#include <prefork/common/inherited_fds.hpp>
#include <prefork/common/log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace prefork {
namespace {

void ignore_signal(int) {}

// The master's signals mean nothing to a worker, but reach it when they are sent to the
// whole process group (`kill -HUP -PGID`, a closing terminal, a supervisor): by default
// HUP and USR1 would kill every worker and TTIN and TTOU stop them. A handler that does
// nothing, not SIG_IGN, so that the processes a handler starts get the defaults back.
void ignore_the_masters_signals() {
    struct sigaction action {};
    action.sa_handler = ignore_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (int signal : {SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU}) {
        ::sigaction(signal, &action, nullptr);
    }
}

}  // namespace

int run_under_master(const Router& router, int control_fd) {
    // First act: no process this worker starts may inherit the control socket, nor take
    // itself for a worker.
    if (::fcntl(control_fd, F_SETFD, FD_CLOEXEC) != 0) {
        log::error("fcntl(F_SETFD) on control socket ", control_fd, ": ", std::strerror(errno));
        return 1;
    }
    ::unsetenv(control::kControlFdEnv);
    mark_close_on_exec_from(control_fd + 1);  // anything else inherited stops here
    log::set_role("worker");
    if (const char* format = std::getenv("PREFORK_LOG_FORMAT");
        format && std::string_view(format) == "json") {
        log::set_format(log::Format::json);
    }
    if (const char* name = std::getenv("PREFORK_LOG_LEVEL")) {
        if (auto level = log::parse_level(name)) log::set_level(*level);
    }
    struct stat st {};
    if (::fstat(control_fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        log::error("descriptor ", control_fd, " is not the master's control socket");
        return 1;
    }
    raise_open_file_limit();  // before the fork guard sizes its table by the limit
    fork_guard::install();
    fork_guard::add(control_fd);
    // Socket writes use MSG_NOSIGNAL already; this covers pipes a handler writes to.
    ::signal(SIGPIPE, SIG_IGN);
    ignore_the_masters_signals();
    // Where Yama's ptrace_scope is 1, only an ancestor may read a process's stack: the
    // master reads ours, from a child of its own, when we hang.
    ::prctl(PR_SET_PTRACER, ::getppid(), 0, 0, 0);

    WorkerRuntime runtime(router);
    boost::asio::io_context& io = runtime.io;
    Server& server = runtime.server;
    ControlClient control(io, UniqueFd(control_fd), server, [&io] { io.stop(); });

    // INT comes from a terminal to the whole process group: the master decides what it
    // means. TERM to a worker alone drains it; QUIT stops it at once.
    boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGQUIT);
    std::function<void()> wait_for_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int signal) {
            if (ec) return;
            if (signal == SIGTERM) control.drain();
            if (signal == SIGQUIT) return io.stop();
            wait_for_signal();
        });
    };
    wait_for_signal();

    control.start();
    runtime.run();
    return 0;
}

}  // namespace prefork

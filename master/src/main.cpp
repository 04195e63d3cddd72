// prefork: binds the listening sockets, starts the worker command as worker processes,
// hands each worker the sockets over its control socket, and supervises them.

#include "listener_set.hpp"
#include "options.hpp"
#include "pid_file.hpp"
#include "supervisor.hpp"
#include "systemd.hpp"
#include "worker_process.hpp"

#include <prefork/common/descriptor_limit.hpp>
#include <prefork/common/inherited_fds.hpp>
#include <prefork/common/log.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsage = 2;

// A descriptor 0, 1 or 2 that is closed would be handed to the next socket we open and
// then to every worker as its stdin or stdout: fill the gaps with /dev/null.
void open_standard_descriptors() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) >= 0) continue;
        int opened = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);  // lands on fd
        if (opened > 2) ::close(opened);
    }
}

// The default soft limit (1024) can be short for many workers; the hard limit is what the
// operator allows. Workers, which need far more, raise theirs too.
void raise_descriptor_limit(const prefork::master::Options& options) {
    std::size_t limit = prefork::raise_open_file_limit();
    // Each worker's control socket, twice over during a reload; the listeners; the admin
    // endpoint's clients and the reserve it leaves; the event loop's own and stdio.
    std::size_t needed = 2 * static_cast<std::size_t>(options.workers) + options.binds.size() +
                         (options.admin ? prefork::master::AdminServer::kMaxConnections : 0) +
                         prefork::master::AdminServer::kDescriptorReserve + 16;
    if (limit < needed) {
        prefork::log::warning("the open file limit is ", limit, ", below the ", needed,
                              " descriptors ", options.workers,
                              " workers and the admin endpoint may need; the admin endpoint "
                              "takes fewer clients (raise LimitNOFILE or ulimit -n)");
    }
}

int fail(int status, const std::string& message) {
    std::string line = "prefork: " + message + "\n";
    ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
    return status;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace prefork::master;
    open_standard_descriptors();
    // Nothing prefork did not open itself reaches a worker (systemd's sockets are taken,
    // and made close-on-exec, below).
    prefork::mark_close_on_exec_from(3);
    ::signal(SIGPIPE, SIG_IGN);  // a closed peer is an error code, never a dead master

    // systemd's variables are ours alone: taken (and the sockets made close-on-exec) before
    // anything can start a process.
    SystemdNotifier notifier = SystemdNotifier::from_environment();
    std::vector<ActivatedSocket> activated = take_activated_sockets();

    ParsedCommandLine parsed;
    try {
        parsed = parse_command_line(argc, argv);
    } catch (const UsageError& error) {
        return fail(kExitUsage, error.what());
    }
    if (parsed.action == Action::help) {
        std::cout << usage_text();
        return 0;
    }
    if (parsed.action == Action::version) {
        std::cout << "prefork " << PREFORK_VERSION << "\n";
        return 0;
    }
    Options options;
    try {
        options = resolve_options(parsed.settings);
    } catch (const UsageError& error) {
        return fail(kExitUsage, error.what());
    }
    if (parsed.action == Action::check) {
        try {
            check_worker_command(options.command);
        } catch (const std::exception& error) {
            return fail(kExitUsage, error.what());
        }
        std::cout << "prefork " << PREFORK_VERSION << ": the configuration is valid\n";
        return 0;
    }
    prefork::log::set_role("master");
    prefork::log::set_format(options.log_format);
    prefork::log::set_level(options.log_level);
    raise_descriptor_limit(options);

    // As a container's PID 1, or under another supervisor, orphans of our workers' children
    // become ours to reap.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    ListenerSet listeners;
    listeners.set_reuseport(options.reuseport);
    try {
        if (activated.empty()) {
            listeners.bind_all(options.binds);
        } else {
            std::vector<std::pair<std::string, prefork::UniqueFd>> sockets;
            for (auto& socket : activated) sockets.emplace_back(socket.name, std::move(socket.fd));
            listeners.adopt(std::move(sockets));
        }
    } catch (const prefork::AddressError& error) {
        return fail(kExitRuntimeError, error.what());
    }
    prefork::UniqueFd admin;
    if (options.admin) {
        try {
            admin = prefork::bind_listener(*options.admin);
        } catch (const prefork::AddressError& error) {
            return fail(kExitRuntimeError, std::string("admin endpoint: ") + error.what());
        }
    }
    PidFile pid_file;
    try {
        pid_file = PidFile::create(options.pid_file);
    } catch (const std::exception& error) {
        return fail(kExitRuntimeError, error.what());
    }
    try {
        return Supervisor(std::move(parsed.settings), std::move(options), std::move(listeners),
                          std::move(admin), std::move(notifier))
            .run();
    } catch (const std::exception& error) {
        return fail(kExitRuntimeError, error.what());
    }
}

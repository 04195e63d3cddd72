// prefork: binds the listening sockets, starts the worker command as worker processes,
// hands each worker the sockets over its control socket, and supervises them.

#include "listener_set.hpp"
#include "options.hpp"
#include "pid_file.hpp"
#include "supervisor.hpp"
#include "systemd.hpp"
#include "upgrade_state.hpp"
#include "worker_process.hpp"

#include <prefork/common/descriptor_limit.hpp>
#include <prefork/common/inherited_fds.hpp>
#include <prefork/common/log.hpp>

#include <boost/json.hpp>
#include <boost/process/search_path.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <iostream>
#include <optional>

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

// The binary an upgrade runs: the path prefork was started from (a relative one made
// absolute; a bare name found on PATH as the shell found it), not where a symlink led, so
// that pointing the link at a new release upgrades to it.
std::string started_from(const char* argv0) {
    std::string name = argv0 != nullptr ? argv0 : "";
    if (name.find('/') != std::string::npos) {
        if (name.front() == '/') return name;
        char cwd[PATH_MAX];
        if (::getcwd(cwd, sizeof(cwd)) != nullptr) return std::string(cwd) + "/" + name;
    } else if (!name.empty()) {
        auto found = boost::process::search_path(name);
        if (!found.empty()) return found.string();
    }
    char self[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    return n > 0 ? std::string(self, static_cast<std::size_t>(n)) : name;
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
    // and made close-on-exec, below; after an upgrade's exec, what crossed it is
    // close-on-exec again from here).
    prefork::mark_close_on_exec_from(3);
    ::signal(SIGPIPE, SIG_IGN);  // a closed peer is an error code, never a dead master

    // An upgrade's exec started this image: the master before it left its state.
    std::optional<boost::json::object> state;
    try {
        state = upgrade::take_state_from_environment();
    } catch (const upgrade::StateError& error) {
        return fail(
            kExitRuntimeError,
            std::string("cannot take over from the master before the upgrade: ") + error.what());
    }

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
    Settings settings;
    Options options;
    try {
        if (state) {
            // The running configuration, as the old image ran by it; the upgrade's reload
            // then reads the configuration anew.
            try {
                settings = upgrade::settings_from_json(state->at("settings"));
                options = check_settings(settings);
            } catch (const std::exception&) {
                settings = gather_settings(parsed.settings);
                options = check_settings(settings);
            }
        } else {
            settings = gather_settings(parsed.settings);
            options = check_settings(settings);
        }
    } catch (const UsageError& error) {
        return fail(kExitUsage, error.what());
    }
    if (parsed.action == Action::check) {
        try {
            check_worker_command(options.command);
        } catch (const std::exception& error) {
            return fail(kExitUsage, error.what());
        }
        // The second line tells an upgrading master that this binary can take over from it.
        std::cout << "prefork " << PREFORK_VERSION << ": the configuration is valid\n"
                  << "upgrade state formats: 1 to " << upgrade::kStateFormat << "\n";
        return 0;
    }
    prefork::log::set_role("master");
    prefork::log::set_format(options.log_format);
    prefork::log::set_level(options.log_level);
    raise_descriptor_limit(options);

    // As a container's PID 1, or under another supervisor, orphans of our workers' children
    // become ours to reap.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);

    MasterIdentity identity{PREFORK_VERSION, started_from(argv[0]),
                            std::vector<std::string>(argv, argv + argc)};
    ListenerSet listeners;
    prefork::UniqueFd admin;
    if (state) {
        try {
            using namespace upgrade;
            notifier = SystemdNotifier::from_path(string_at(*state, "notify_socket"));
            listeners =
                ListenerSet::restore(array_at(*state, "listeners"), bool_at(*state, "reuseport"),
                                     bool_at(*state, "adopted"));
            if (int_at(*state, "admin_fd") >= 0) {
                admin = take_descriptor(state->at("admin_fd"), "the admin endpoint");
            }
        } catch (const upgrade::StateError& error) {
            return fail(kExitRuntimeError,
                        std::string("cannot take over from the master before the upgrade: ") +
                            error.what());
        }
    } else {
        listeners.set_reuseport(options.reuseport);
        try {
            if (activated.empty()) {
                listeners.bind_all(options.binds);
            } else {
                std::vector<std::pair<std::string, prefork::UniqueFd>> sockets;
                for (auto& socket : activated)
                    sockets.emplace_back(socket.name, std::move(socket.fd));
                listeners.adopt(std::move(sockets));
            }
        } catch (const prefork::AddressError& error) {
            return fail(kExitRuntimeError, error.what());
        }
        if (options.admin) {
            try {
                admin = prefork::bind_listener(*options.admin);
            } catch (const prefork::AddressError& error) {
                return fail(kExitRuntimeError, std::string("admin endpoint: ") + error.what());
            }
        }
    }
    PidFile pid_file;  // the same pid after an upgrade: written again
    try {
        pid_file = PidFile::create(options.pid_file);
    } catch (const std::exception& error) {
        // After an upgrade's exec the old image wrote it, with this same pid; exiting now
        // would take the workers down with it.
        if (!state) return fail(kExitRuntimeError, error.what());
        prefork::log::warning(error.what(), " (it was written before the upgrade)");
    }
    try {
        if (state) {
            return Supervisor(std::move(identity), std::move(parsed.settings), std::move(settings),
                              std::move(options), std::move(listeners), std::move(admin),
                              std::move(notifier), *state)
                .run();
        }
        return Supervisor(std::move(identity), std::move(parsed.settings), std::move(settings),
                          std::move(options), std::move(listeners), std::move(admin),
                          std::move(notifier))
            .run();
    } catch (const std::exception& error) {
        return fail(kExitRuntimeError, error.what());
    }
}

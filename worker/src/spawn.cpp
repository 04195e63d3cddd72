#include "spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>

extern char** environ;

namespace prefork {

using boost::system::error_code;

error_code spawn(const std::vector<std::string>& argv, const std::vector<std::string>* env,
                 const std::string& cwd, const Stdio& stdio, pid_t& pid) {
    if (argv.empty() || argv[0].empty()) return make_error_code(std::errc::invalid_argument);

    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<char*> vars;
    if (env != nullptr) {
        for (const auto& var : *env) vars.push_back(const_cast<char*>(var.c_str()));
        vars.push_back(nullptr);
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attributes);
    int rc = 0;
    auto add = [&rc](int result) {
        if (rc == 0) rc = result;
    };
    const std::array<std::pair<int, int>, 3> moves = {
        {{stdio.in, STDIN_FILENO}, {stdio.out, STDOUT_FILENO}, {stdio.err, STDERR_FILENO}}};
    for (auto [from, to] : moves) {
        if (from >= 0) add(::posix_spawn_file_actions_adddup2(&actions, from, to));
    }
    add(::posix_spawn_file_actions_addclosefrom_np(&actions, 3));
    if (!cwd.empty()) add(::posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str()));

    sigset_t defaults;
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    sigset_t empty;
    sigemptyset(&empty);
    add(::posix_spawnattr_setsigdefault(&attributes, &defaults));
    add(::posix_spawnattr_setsigmask(&attributes, &empty));
    add(::posix_spawnattr_setpgroup(&attributes, 0));
    add(::posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP));
    if (rc == 0) {
        char* const* envp = env != nullptr ? vars.data() : environ;
        bool search = argv[0].find('/') == std::string::npos;
        rc = search ? ::posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), envp)
                    : ::posix_spawn(&pid, args[0], &actions, &attributes, args.data(), envp);
    }
    ::posix_spawnattr_destroy(&attributes);
    ::posix_spawn_file_actions_destroy(&actions);
    return error_code(rc, boost::system::system_category());
}

error_code make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return error_code(errno, boost::system::system_category());
    read_end = UniqueFd(fds[0]);
    write_end = UniqueFd(fds[1]);
    return {};
}

}  // namespace prefork

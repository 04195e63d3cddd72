#pragma once

#include <boost/system/error_code.hpp>

#include <prefork/common/unique_fd.hpp>

#include <sys/types.h>

#include <string>
#include <vector>

namespace prefork {

// Where a spawned program's standard descriptors come from: a descriptor of ours (dup2'd
// into place in the child), or the worker's own when -1.
struct Stdio {
    int in = -1;
    int out = -1;
    int err = -1;
};

// Starts a program with posix_spawn: safe in a threaded process (the child runs on its own
// stack with every signal blocked until exec; errors come back without a pipe). The child
// gets `stdio` as 0, 1, 2 and nothing else (closefrom 3, whatever the worker holds and
// however it was opened), every signal at its default disposition (the worker ignores
// SIGPIPE; a program must not inherit that), an empty signal mask, and its own process
// group, so that a timeout or a cancellation can kill it with everything it started.
// `env`: the whole environment ("NAME=VALUE"), or null for the worker's; `cwd`: empty for
// the worker's. Callable from any thread.
boost::system::error_code spawn(const std::vector<std::string>& argv,
                                const std::vector<std::string>* env, const std::string& cwd,
                                const Stdio& stdio, pid_t& pid);

// A pipe whose both ends are close-on-exec from the call that creates them.
boost::system::error_code make_pipe(UniqueFd& read_end, UniqueFd& write_end);

}  // namespace prefork

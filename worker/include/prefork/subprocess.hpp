#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace prefork {

// Starts `argv[0]` (looked up on PATH unless it contains a '/') with the given arguments
// as a child of this worker and returns its pid at once; the worker reaps it when it
// exits. The child inherits descriptors 0, 1 and 2 and nothing else (every descriptor the
// worker holds is close-on-exec), and default signal dispositions.
// Call it on the worker's event loop (from a handler). Throws std::runtime_error when the
// program cannot be started, std::logic_error outside a running App.
pid_t spawn_process(const std::vector<std::string>& argv);

// Has the worker reap a child that user code started itself (fork(), posix_spawn()), so
// that it leaves no zombie. Call it on the worker's event loop.
void adopt_child(pid_t pid);

}  // namespace prefork

#pragma once

namespace prefork {

// Marks every descriptor from `first` up close-on-exec: whatever a process inherited
// without the flag (a leaky parent, a shell) goes no further than this process.
// Async-signal-safe (one close_range system call), so it may run between fork and exec.
void mark_close_on_exec_from(int first);

}  // namespace prefork

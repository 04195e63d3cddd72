#pragma once

// How many descriptors a process may open, and how many it has open.

#include <cstddef>
#include <optional>

namespace prefork {

// Raises the soft RLIMIT_NOFILE to the hard limit (the default soft limit, 1024, is far
// below what a server needs) and returns the soft limit in force afterwards.
std::size_t raise_open_file_limit();

// The soft RLIMIT_NOFILE now.
std::size_t open_file_limit();

// How many descriptors this process has open (the entries of /proc/self/fd), or nullopt
// when that cannot be read.
std::optional<std::size_t> open_descriptor_count();

}  // namespace prefork

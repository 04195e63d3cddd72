#pragma once

#include <string>

namespace prefork::master {

// "exited with status 3", "killed by SIGSEGV (core dumped)": what waitpid's status means.
std::string describe_wait_status(int wait_status);

}  // namespace prefork::master

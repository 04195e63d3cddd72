#include "exit_status.hpp"

#include <sys/wait.h>

#include <cstring>

namespace prefork::master {

std::string describe_wait_status(int wait_status) {
    if (WIFEXITED(wait_status))
        return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
    if (WIFSIGNALED(wait_status)) {
        int signal = WTERMSIG(wait_status);
        const char* name = ::sigabbrev_np(signal);
        std::string text =
            "killed by " + (name ? "SIG" + std::string(name) : "signal " + std::to_string(signal));
        if (WCOREDUMP(wait_status)) text += " (core dumped)";
        return text;
    }
    return "ended with wait status " + std::to_string(wait_status);
}

}  // namespace prefork::master

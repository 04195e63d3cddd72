// ChildProcess: a process a test starts, logs and always ends.
#include "child_process.hpp"

#include "eventually.hpp"
#include "proc_files.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace prefork::testing {

namespace {

std::string make_log_path() {
    char path[] = "/tmp/prefork-test-log-XXXXXX";
    int fd = ::mkstemp(path);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    return path;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, std::vector<std::string> extra_env,
                           int leaked_fd)
    : log_path_(make_log_path()), argv0_(argv.at(0)) {
    spawn(std::move(argv), std::move(extra_env), leaked_fd, -1);
}

ChildProcess::ChildProcess(ThroughPipe pipe, std::vector<std::string> argv,
                           std::vector<std::string> extra_env)
    : log_path_(make_log_path()), argv0_(argv.at(0)) {
    int ends[2];
    if (::pipe2(ends, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    ::fcntl(ends[1], F_SETPIPE_SZ, pipe.capacity);
    try {
        spawn(std::move(argv), std::move(extra_env), -1, ends[1]);
    } catch (...) {
        ::close(ends[0]);
        ::close(ends[1]);
        throw;
    }
    ::close(ends[1]);  // the child's copies are the only writers: EOF once they have all gone
    output_copier_ = std::thread([this, read_end = ends[0]] { copy_output(read_end); });
}

void ChildProcess::copy_output(int pipe) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    char buffer[16384];
    while (!output_done_) {
        if (output_stalled_) {
            std::this_thread::sleep_for(10ms);
            continue;
        }
        pollfd readable{pipe, POLLIN, 0};
        if (::poll(&readable, 1, 20) <= 0) continue;
        ssize_t n = ::read(pipe, buffer, sizeof buffer);
        if (n <= 0) break;  // every writer has gone
        ssize_t ignored = ::write(log, buffer, static_cast<std::size_t>(n));
        (void)ignored;
    }
    ::close(log);
    ::close(pipe);
    output_copied_ = true;
}

void ChildProcess::spawn(std::vector<std::string> argv, std::vector<std::string> extra_env,
                         int leaked_fd, int output_fd) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string entry = *e;
        std::string name = entry.substr(0, entry.find('=') + 1);
        bool overridden = false;  // a test's NAME=VALUE replaces the inherited one
        for (const auto& extra : extra_env) overridden = overridden || extra.starts_with(name);
        if (!overridden) env.push_back(std::move(entry));
    }
    for (auto& extra : extra_env) env.push_back(extra);
    std::vector<char*> argv_c, env_c;
    for (auto& a : argv) argv_c.push_back(a.data());
    argv_c.push_back(nullptr);
    for (auto& e : env) env_c.push_back(e.data());
    env_c.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (output_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(), O_WRONLY | O_APPEND, 0);
    }
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (leaked_fd >= 0) {  // a test hands it a descriptor as a leaky parent would, as fd 7
        posix_spawn_file_actions_adddup2(&actions, leaked_fd, 7);
        posix_spawn_file_actions_addclosefrom_np(&actions, 8);
    } else {
        posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // it starts with 0, 1, 2 only
    }
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    int rc = ::posix_spawnp(&pid_, argv_c[0], &actions, &attributes, argv_c.data(), env_c.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0) {
        ::kill(-pid_, SIGKILL);  // the whole group: the process and whatever it started
        if (!wait_status_) ::waitpid(pid_, nullptr, 0);
    }
    if (output_copier_.joinable()) {
        output_stalled_ = false;
        // The group is dead: what is left in the pipe arrives, then EOF (bounded, should a
        // process outside the group still hold the pipe).
        eventually([&] { return output_copied_.load(); }, 2s);
        output_done_ = true;
        output_copier_.join();
    }
    // Under the sanitizer build, any report from the process or its workers fails the test.
    std::string log = output();
    for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:", "WARNING: ThreadSanitizer"}) {
        if (log.find(marker) != std::string::npos) {
            ADD_FAILURE() << "sanitizer report from " << argv0_ << ":\n" << log;
            break;
        }
    }
    ::unlink(log_path_.c_str());
}

void ChildProcess::signal(int signal) const {
    ::kill(pid_, signal);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
    eventually(
        [&] {
            int status = 0;
            if (!wait_status_ && ::waitpid(pid_, &status, WNOHANG) == pid_) wait_status_ = status;
            return wait_status_.has_value();
        },
        timeout);
    return wait_status_;
}

int ChildProcess::wait_exit_status(std::chrono::milliseconds timeout) {
    auto status = wait_exit(timeout);
    if (!status || !WIFEXITED(*status)) return -1;
    return WEXITSTATUS(*status);
}

std::string ChildProcess::output() const {
    std::ifstream in(log_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::vector<std::string> ChildProcess::wait_for_lines(const std::string& needle, std::size_t count,
                                                      std::chrono::milliseconds timeout) const {
    std::vector<std::string> found;
    eventually(
        [&] {
            found.clear();
            std::istringstream lines(output());
            for (std::string line; std::getline(lines, line);) {
                if (line.find(needle) != std::string::npos) found.push_back(line);
            }
            return found.size() >= count;
        },
        timeout);
    return found;
}

std::vector<pid_t> ChildProcess::children() const {
    std::vector<pid_t> pids;
    for (pid_t pid : child_pids(pid_)) {
        if (!process_gone(pid)) pids.push_back(pid);
    }
    return pids;
}

bool ChildProcess::wait_for_children(std::size_t count, std::chrono::milliseconds timeout) const {
    return eventually([&] { return children().size() == count; }, timeout);
}

}  // namespace prefork::testing

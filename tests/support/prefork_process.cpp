#include "prefork_process.hpp"

#include "eventually.hpp"
#include "http_client.hpp"

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace prefork::testing {

std::string prefork_binary() {
    return PREFORK_BINARY;
}
std::string demo_binary() {
    return PREFORK_DEMO_BINARY;
}
std::string crash_worker_binary() {
    return PREFORK_CRASH_WORKER_BINARY;
}
std::string preforkctl_binary() {
    return PREFORKCTL_BINARY;
}

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
        auto deadline = std::chrono::steady_clock::now() + 2s;
        while (!output_copied_ && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
        }
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
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!wait_status_) {
        int status = 0;
        pid_t done = ::waitpid(pid_, &status, WNOHANG);
        if (done == pid_) {
            wait_status_ = status;
            break;
        }
        if (std::chrono::steady_clock::now() >= deadline) break;
        std::this_thread::sleep_for(10ms);
    }
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
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::vector<std::string> found;
        std::istringstream lines(output());
        for (std::string line; std::getline(lines, line);) {
            if (line.find(needle) != std::string::npos) found.push_back(line);
        }
        if (found.size() >= count || std::chrono::steady_clock::now() >= deadline) return found;
        std::this_thread::sleep_for(20ms);
    }
}

std::vector<pid_t> ChildProcess::children() const {
    std::vector<pid_t> pids;
    for (pid_t pid : child_pids(pid_)) {
        if (!process_gone(pid)) pids.push_back(pid);
    }
    return pids;
}

namespace {

std::vector<std::string> prefork_command(std::vector<std::string> prefix,
                                         const std::vector<std::string>& args) {
    prefix.push_back(prefork_binary());
    prefix.insert(prefix.end(), args.begin(), args.end());
    prefix.push_back("--");
    prefix.push_back(demo_binary());
    return prefix;
}

}  // namespace

PreforkServer::PreforkServer(std::vector<std::string> args, int workers,
                             std::vector<std::string> extra_env)
    : ChildProcess(prefork_command({}, args), std::move(extra_env)) {
    wait_until_ready(workers);
}

PreforkServer::PreforkServer(std::vector<std::string> prefix, std::vector<std::string> args,
                             int workers)
    : ChildProcess(prefork_command(std::move(prefix), args)) {
    wait_until_ready(workers);
}

bool ChildProcess::wait_for_children(std::size_t count, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (children().size() != count) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

PreforkServer::PreforkServer(FromArgv, std::vector<std::string> argv, int workers)
    : ChildProcess(std::move(argv)) {
    wait_until_ready(workers);
}

std::unique_ptr<PreforkServer> PreforkServer::with_worker(std::vector<std::string> args,
                                                          std::vector<std::string> worker_command,
                                                          int workers) {
    std::vector<std::string> argv = {prefork_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--");
    argv.insert(argv.end(), worker_command.begin(), worker_command.end());
    return std::unique_ptr<PreforkServer>(new PreforkServer(FromArgv{}, std::move(argv), workers));
}

PreforkServer::PreforkServer(ThroughPipe pipe, std::vector<std::string> argv, int workers,
                             std::vector<std::string> extra_env)
    : ChildProcess(pipe, std::move(argv), std::move(extra_env)) {
    wait_until_ready(workers);
}

std::unique_ptr<PreforkServer> PreforkServer::with_output_pipe(std::vector<std::string> args,
                                                               int workers,
                                                               std::vector<std::string> extra_env) {
    return std::unique_ptr<PreforkServer>(
        new PreforkServer(ThroughPipe{}, prefork_command({}, args), workers, std::move(extra_env)));
}

std::unique_ptr<PreforkServer> PreforkServer::from_config(const std::string& config_path,
                                                          int workers) {
    return std::unique_ptr<PreforkServer>(
        new PreforkServer(FromArgv{}, {prefork_binary(), "--config", config_path}, workers));
}

std::vector<std::uint16_t> PreforkServer::ports() const {
    std::vector<std::uint16_t> ports;
    for (const std::string& line : wait_for_lines("listening on ", 0, 0ms)) {
        auto start = line.find("listening on ") + 13;
        auto end = line.find(' ', start);
        std::string address = line.substr(start, end - start);
        if (address.starts_with("unix:")) continue;
        ports.push_back(
            static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    }
    return ports;
}

std::uint16_t PreforkServer::admin_port() const {
    auto lines = wait_for_lines("admin endpoint on 127.0.0.1:", 1, 0ms);
    if (lines.empty()) throw std::runtime_error("no admin endpoint in the log:\n" + output());
    const std::string& line = lines[0];
    auto start = line.find("127.0.0.1:") + 10;
    return static_cast<std::uint16_t>(std::stoi(line.substr(start, line.find(' ', start) - start)));
}

bool PreforkServer::wait_for_requests_received(std::uint64_t count,
                                               std::chrono::milliseconds timeout) const {
    std::uint16_t admin = admin_port();
    return eventually(
        [&] {
            try {
                auto status = boost::json::parse(HttpConnection(admin).get("/status.json").body());
                std::uint64_t received = 0;
                for (const auto& worker : status.at("workers").as_array()) {
                    received += worker.at("requests").to_number<std::uint64_t>();
                }
                return received >= count;
            } catch (const std::exception&) {
                return false;
            }
        },
        timeout);
}

void PreforkServer::wait_until_ready(int workers) {
    auto lines = wait_for_lines(" ready (generation", static_cast<std::size_t>(workers));
    if (lines.size() < static_cast<std::size_t>(workers)) {
        throw std::runtime_error("prefork did not get " + std::to_string(workers) +
                                 " workers ready; its log:\n" + output());
    }
    for (const std::string& line : wait_for_lines("listening on ", 1)) {
        auto start = line.find("listening on ") + 13;
        auto end = line.find(' ', start);
        std::string address = line.substr(start, end - start);
        if (address.starts_with("unix:")) continue;
        ports_.push_back(
            static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    }
}

std::uint16_t PreforkServer::port(std::size_t n) const {
    if (n >= ports_.size()) throw std::runtime_error("no TCP listener #" + std::to_string(n));
    return ports_[n];
}

std::string read_text_file(const std::string& path) {
    std::string text;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return text;
    char buffer[4096];
    for (;;) {
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

std::vector<pid_t> child_pids(pid_t parent) {
    std::vector<pid_t> pids;
    std::istringstream in(read_text_file("/proc/" + std::to_string(parent) + "/task/" +
                                         std::to_string(parent) + "/children"));
    for (pid_t pid; in >> pid;) pids.push_back(pid);
    return pids;
}

std::vector<pid_t> zombie_children(pid_t parent) {
    std::vector<pid_t> zombies;
    for (pid_t pid : child_pids(parent)) {
        if (process_state(pid) == 'Z') zombies.push_back(pid);
    }
    return zombies;
}

char process_state(pid_t pid) {
    std::string text = read_text_file("/proc/" + std::to_string(pid) + "/stat");
    auto close = text.rfind(')');  // the name in parentheses may hold anything
    if (close == std::string::npos || close + 2 >= text.size()) return '\0';
    return text[close + 2];
}

bool wait_until_sleeping(pid_t pid, std::chrono::milliseconds timeout) {
    for (auto deadline = std::chrono::steady_clock::now() + timeout;
         std::chrono::steady_clock::now() < deadline;
         std::this_thread::sleep_for(std::chrono::milliseconds(2))) {
        if (process_state(pid) == 'S') return true;
    }
    return false;
}

bool wait_until_in_nanosleep(pid_t pid, std::chrono::milliseconds timeout) {
    const std::string path = "/proc/" + std::to_string(pid) + "/syscall";
    for (auto deadline = std::chrono::steady_clock::now() + timeout;
         std::chrono::steady_clock::now() < deadline;
         std::this_thread::sleep_for(std::chrono::milliseconds(5))) {
        // "NUMBER ARGS..." while in a system call; "running" or "-1 ..." otherwise.
        std::istringstream fields(read_text_file(path));
        long number = -1;
        if (fields >> number && (number == SYS_nanosleep || number == SYS_clock_nanosleep)) {
            return true;
        }
    }
    return false;
}

std::uint64_t resident_kib(pid_t pid) {
    std::istringstream status(read_text_file("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6));
    }
    return 0;
}

bool process_gone(pid_t pid) {
    char state = process_state(pid);
    return state == '\0' || state == 'Z' || state == 'X';
}

bool wait_until_gone(const std::vector<pid_t>& pids, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        bool all_gone = true;
        for (pid_t pid : pids) all_gone = all_gone && process_gone(pid);
        if (all_gone) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(10ms);
    }
}

bool port_is_free(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                 ::listen(fd, 1) == 0;
    ::close(fd);
    return bound;
}

std::set<int> listed_descriptors(const std::string& listing) {
    std::set<int> fds;
    std::istringstream lines(listing);
    for (std::string line; std::getline(lines, line);) fds.insert(std::stoi(line));
    return fds;
}

}  // namespace prefork::testing

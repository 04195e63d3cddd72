#include "systemd.hpp"

#include <prefork/common/listen_address.hpp>
#include <prefork/common/log.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace prefork::master {
namespace {

constexpr int kFirstActivatedFd = 3;  // SD_LISTEN_FDS_START

std::string take_environment(const char* name) {
    const char* value = std::getenv(name);
    std::string text = value ? value : "";
    ::unsetenv(name);
    return text;
}

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t end = text.find(separator, start);
        if (end == std::string::npos) end = text.size();
        parts.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

}  // namespace

SystemdNotifier SystemdNotifier::from_environment() {
    return from_path(take_environment("NOTIFY_SOCKET"));
}

SystemdNotifier SystemdNotifier::from_path(std::string path) {
    SystemdNotifier notifier;
    notifier.socket_path_ = std::move(path);
    if (notifier.socket_path_.empty()) return notifier;
    if (notifier.socket_path_.size() >= sizeof(sockaddr_un::sun_path) ||
        (notifier.socket_path_[0] != '/' && notifier.socket_path_[0] != '@')) {
        log::warning("NOTIFY_SOCKET=", notifier.socket_path_,
                     " is not a Unix socket path; ignored");
        notifier.socket_path_.clear();
        return notifier;
    }
    notifier.socket_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    return notifier;
}

void SystemdNotifier::notify(std::string_view state) const {
    if (socket_path_.empty() || !socket_) return;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';  // abstract namespace
    socklen_t length =
        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
    if (::sendto(socket_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                 reinterpret_cast<sockaddr*>(&address), length) < 0) {
        log::warning("sendto(NOTIFY_SOCKET ", socket_path_, "): ", std::strerror(errno));
    }
}

void SystemdNotifier::ready(std::string_view status) const {
    notify("READY=1\nSTATUS=" + std::string(status));
}

void SystemdNotifier::reloading() const {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    auto usec = static_cast<long long>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1000;
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading");
}

void SystemdNotifier::stopping() const {
    notify("STOPPING=1\nSTATUS=stopping");
}

std::vector<ActivatedSocket> take_activated_sockets() {
    std::string pid = take_environment("LISTEN_PID");
    std::string count = take_environment("LISTEN_FDS");
    std::string names = take_environment("LISTEN_FDNAMES");
    std::vector<ActivatedSocket> sockets;
    if (pid.empty() || count.empty() || std::atol(pid.c_str()) != ::getpid()) return sockets;
    int n = std::atoi(count.c_str());
    std::vector<std::string> fd_names = split(names, ':');
    for (int i = 0; i < n; ++i) {
        int fd = kFirstActivatedFd + i;
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // before anything can be started
        std::string name = i < static_cast<int>(fd_names.size()) && !fd_names[i].empty()
                               ? fd_names[i]
                               : local_address(fd);
        sockets.push_back({name, UniqueFd(fd)});
    }
    return sockets;
}

}  // namespace prefork::master

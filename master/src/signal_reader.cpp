#include "signal_reader.hpp"

#include <prefork/common/log.hpp>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace prefork::master {
namespace {

int blocked_signalfd(const std::vector<int>& signals) {
    sigset_t set;
    sigemptyset(&set);
    for (int signal : signals) sigaddset(&set, signal);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
        throw std::system_error(errno, std::system_category(), "sigprocmask");
    }
    int fd = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "signalfd");
    return fd;
}

}  // namespace

SignalReader::SignalReader(boost::asio::io_context& io, const std::vector<int>& signals)
    : io_(io), fd_(io, blocked_signalfd(signals)) {}

void SignalReader::start(std::function<void(int)> handler) {
    handler_ = std::move(handler);
    wait();
}

void SignalReader::wait() {
    fd_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                   [this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
                       if (alive.expired() || ec == boost::asio::error::operation_aborted) return;
                       if (ec) {
                           log::error("waiting for signals: ", ec.message());
                           return;
                       }
                       read_pending();
                       if (!alive.expired() && !io_.stopped()) wait();
                   });
}

// Until EAGAIN: the reactor reports the signalfd's readiness as an edge.
void SignalReader::read_pending() {
    std::weak_ptr<int> alive = alive_;
    for (;;) {
        signalfd_siginfo info{};
        ssize_t n = ::read(fd_.native_handle(), &info, sizeof(info));
        if (n == static_cast<ssize_t>(sizeof(info))) {
            if (handler_) handler_(static_cast<int>(info.ssi_signo));
            if (alive.expired() || io_.stopped()) return;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) log::error("read(signalfd): ", std::strerror(errno));
        return;
    }
}

}  // namespace prefork::master

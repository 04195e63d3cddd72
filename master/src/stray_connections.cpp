#include "stray_connections.hpp"

#include <prefork/common/log.hpp>

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace prefork::master {
namespace {

// Connections taken per wake-up: a queue is emptied in a few turns of the loop, and the
// master's other work never waits for long behind it.
constexpr int kTakeBatch = 64;

}  // namespace

void StrayConnections::watch(const std::vector<int>& listeners) {
    for (auto it = watches_.begin(); it != watches_.end();) {
        if (std::find(listeners.begin(), listeners.end(), it->first) == listeners.end()) {
            it = watches_.erase(it);  // closes the duplicate; the master's socket stays
        } else {
            ++it;
        }
    }
    for (int fd : listeners) {
        if (auto found = watches_.find(fd); found != watches_.end()) {
            if (found->second->paused) {
                found->second->paused = false;
                wait(fd, *found->second);
            }
            continue;
        }
        UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
        if (!copy) {
            log::error("cannot watch a worker slot's queue: ", std::strerror(errno));
            continue;
        }
        auto watch = std::make_unique<Watch>(io_);
        boost::system::error_code ec;
        watch->listener.assign(copy.release(), ec);
        if (ec) continue;
        watch->listener.non_blocking(true, ec);
        wait(fd, *watch);
        watches_.emplace(fd, std::move(watch));
    }
}

void StrayConnections::wait(int fd, Watch& watch) {
    watch.listener.async_wait(boost::asio::posix::descriptor_base::wait_read,
                              [this, fd, &watch](boost::system::error_code ec) {
                                  if (ec) return;  // let go (operation_aborted)
                                  take_from(fd, watch);
                              });
}

void StrayConnections::take_from(int fd, Watch& watch) {
    for (int taken = 0; taken < kTakeBatch; ++taken) {
        if (!can_take_()) {
            watch.paused = true;  // they wait in the queue; watch() starts again
            return;
        }
        int connection = ::accept4(watch.listener.native_handle(), nullptr, nullptr,
                                   SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (connection < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN) break;
            log::error("accepting from a worker slot's queue: ", std::strerror(errno));
            watch.paused = true;  // still readable: waiting again now would spin
            return retry_later();
        }
        take_(UniqueFd(connection), fd);
        ++rescued_;
    }
    wait(fd, watch);
}

void StrayConnections::retry_later() {
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        for (auto& [fd, watch] : watches_) {
            if (!watch->paused) continue;
            watch->paused = false;
            wait(fd, *watch);
        }
    });
}

}  // namespace prefork::master

#include "child_reaper.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cerrno>

namespace prefork {
namespace {
std::atomic<ChildReaper*> g_current{nullptr};
}

ChildReaper::ChildReaper(boost::asio::io_context& io) : io_(io), sigchld_(io, SIGCHLD) {
    wait_for_sigchld();
}

ChildReaper* ChildReaper::current() {
    return g_current.load();
}
void ChildReaper::set_current(ChildReaper* reaper) {
    g_current.store(reaper);
}

void ChildReaper::adopt(pid_t pid) {
    children_.insert(pid);
    reap();  // it may have ended already
}

void ChildReaper::wait_for_sigchld() {
    sigchld_.async_wait([this](boost::system::error_code ec, int) {
        if (ec) return;
        reap();
        wait_for_sigchld();
    });
}

void ChildReaper::reap() {
    for (auto it = children_.begin(); it != children_.end();) {
        pid_t done;
        do {
            done = ::waitpid(*it, nullptr, WNOHANG);
        } while (done < 0 && errno == EINTR);
        it = (done == 0) ? std::next(it) : children_.erase(it);  // ended, or not ours any more
    }
}

}  // namespace prefork

#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <sys/types.h>

#include <set>

namespace prefork {

// Reaps the processes this worker started, on its event loop, when SIGCHLD says one
// ended. Only the pids it was given: a child that user code waits for itself keeps its
// exit status.
class ChildReaper {
  public:
    explicit ChildReaper(boost::asio::io_context& io);

    void adopt(pid_t pid);
    std::size_t running() const { return children_.size(); }

    // The reaper of the App running on this thread, or null.
    static ChildReaper* current();
    static void set_current(ChildReaper* reaper);

  private:
    void wait_for_sigchld();
    void reap();

    boost::asio::signal_set sigchld_;
    std::set<pid_t> children_;
};

}  // namespace prefork

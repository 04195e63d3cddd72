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

    // On the loop.
    void adopt(pid_t pid);
    std::size_t running() const { return children_.size(); }

    // The worker's event loop.
    boost::asio::io_context& io() { return io_; }

    // The reaper of the App running in this process (one per process), or null. Set and
    // cleared by the loop's thread around run(); read from any thread.
    static ChildReaper* current();
    static void set_current(ChildReaper* reaper);

  private:
    void wait_for_sigchld();
    void reap();

    boost::asio::io_context& io_;
    boost::asio::signal_set sigchld_;
    std::set<pid_t> children_;
};

}  // namespace prefork

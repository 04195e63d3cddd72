#pragma once

#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <string>

namespace prefork {

// Accepts connections on one listening socket that this worker shares with the others:
// waits until the socket is readable, then takes a few connections with
// accept4(SOCK_CLOEXEC | SOCK_NONBLOCK), so that no descriptor is ever inheritable.
class Acceptor {
  public:
    // Called with each accepted connection and the listener's address family.
    using AcceptHandler = std::function<void(UniqueFd connection, int family)>;

    Acceptor(boost::asio::io_context& io, UniqueFd listener, std::string name,
             AcceptHandler on_accept);

    void start();
    // Closes this worker's copy of the listening socket.
    void close();
    // Stops taking connections (they wait in the shared queue for others), and starts again.
    void pause();
    void resume();
    const std::string& name() const { return name_; }
    int native_handle() { return listener_.native_handle(); }

  private:
    void do_wait();
    void on_readable();
    void back_off();

    boost::asio::posix::stream_descriptor listener_;
    boost::asio::steady_timer pause_timer_;
    std::string name_;
    int family_;
    AcceptHandler on_accept_;
    bool paused_ = false;
};

}  // namespace prefork

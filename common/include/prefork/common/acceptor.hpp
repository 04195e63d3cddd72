#pragma once

#include <prefork/common/edge_wait.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace prefork {

// Accepts connections on one listening socket that this worker shares with the others:
// waits until the socket is readable, then takes a few connections with
// accept4(SOCK_CLOEXEC | SOCK_NONBLOCK), so that no descriptor is ever inheritable. After a
// wake-up that took every connection queued, the next wait costs no system call (EdgeWait).
class Acceptor {
  public:
    // Called with each accepted connection and the listener's address family.
    using AcceptHandler = std::function<void(UniqueFd connection, int family)>;

    Acceptor(boost::asio::io_context& io, UniqueFd listener, std::string name,
             AcceptHandler on_accept);
    ~Acceptor();
    Acceptor(const Acceptor&) = delete;
    Acceptor& operator=(const Acceptor&) = delete;

    void start();
    // Closes this worker's copy of the listening socket.
    void close();
    // Stops taking connections (they wait in the shared queue for others), and starts again.
    void pause();
    void resume();
    const std::string& name() const { return name_; }
    int native_handle() const { return const_cast<Acceptor*>(this)->listener_.native_handle(); }

  private:
    void do_wait();
    void on_wait_done(std::uint64_t wait, const boost::system::error_code& ec);
    void on_readable();
    void back_off();

    // Asio's socket over the listening socket, for its waits (it is never read or written).
    EdgeWait::Exposing<boost::asio::basic_stream_socket<boost::asio::generic::stream_protocol>>
        listener_;
    // Kept alive by itself while it waits: it may complete after this acceptor is gone.
    std::shared_ptr<EdgeWait> edge_wait_ = std::make_shared<EdgeWait>();
    bool drained_ = false;  // the last accept4 found the queue empty
    // A wait's completion may run after a pause or after this acceptor is gone: only the
    // latest wait of a living acceptor acts.
    std::uint64_t wait_ = 0;
    std::shared_ptr<Acceptor*> self_ = std::make_shared<Acceptor*>(this);
    boost::asio::steady_timer pause_timer_;
    std::string name_;
    int family_;
    AcceptHandler on_accept_;
    bool paused_ = false;
};

}  // namespace prefork

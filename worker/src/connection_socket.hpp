#pragma once

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>

namespace prefork {

// A client connection's socket: Asio's stream socket, plus a wait for input that costs no
// system call on a socket that was read until empty.
//
// Asio's epoll reactor registers every socket once, edge-triggered for input, and keeps per
// socket whether an edge has come since an operation last found the input exhausted (the
// reactor's "speculative" flag). Its async_wait ignores that flag and re-arms the edge with
// an epoll_ctl on every wait (Boost 1.81, epoll_reactor::start_op): one system call per
// keep-alive request. InputWait uses the flag instead: a wait completes at once when an edge
// came since the last wait completed, and is queued without a system call otherwise. So the
// caller must have read the socket until it was empty (a read that returned less than it
// asked for, or EAGAIN) since the last wait completed: input that arrives after that brings
// a new edge. Without such a read, use async_wait.
class ConnectionSocket
    : public boost::asio::basic_stream_socket<boost::asio::generic::stream_protocol,
                                              boost::asio::io_context::executor_type> {
  public:
    using basic_stream_socket::basic_stream_socket;

    // This process holds the only descriptor of the socket (it was just accepted): its close
    // then takes it out of epoll by itself, and Asio's epoll_ctl DEL is skipped. Not for a
    // descriptor that another process may hold (one passed over a Unix socket).
    void is_sole_descriptor();

    class InputWait;

  private:
    friend class InputWait;
};

// One wait for input at a time, owned by the connection it wakes (no allocation per wait).
// `resume(target, error)` runs on the loop like any completion handler: with no error when
// the socket may be readable, with operation_aborted when it was closed, released or
// cancelled first. `keep` (the connection) lives until `resume` has returned.
class ConnectionSocket::InputWait : boost::asio::detail::reactor_op {
  public:
    using Resume = void (*)(void* target, const boost::system::error_code& error);

    InputWait();
    InputWait(const InputWait&) = delete;
    InputWait& operator=(const InputWait&) = delete;

    void start(ConnectionSocket& socket, std::shared_ptr<void> keep, Resume resume, void* target);

  private:
    static status perform(reactor_op* base);
    static void complete(void* owner, boost::asio::detail::operation* base,
                         const boost::system::error_code& ignored, std::size_t);

    std::shared_ptr<void> keep_;
    Resume resume_ = nullptr;
    void* target_ = nullptr;
};

}  // namespace prefork

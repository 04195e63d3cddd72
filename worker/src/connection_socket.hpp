#pragma once

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <utility>

namespace prefork {

// A client connection's socket: the descriptor, and Asio's stream socket over it once the
// connection first waits for something. A client whose request came with its connection and
// that is answered at once (reads and writes tried at once are our own system calls) is
// served without the socket ever entering epoll: no epoll_ctl ADD, nothing to remove at its
// close.
//
// Waiting for input costs no system call either on a socket that was read until empty.
// Asio's epoll reactor registers every socket once, edge-triggered for input, and keeps per
// socket whether an edge has come since an operation last found the input exhausted (the
// reactor's "speculative" flag). Its async_wait ignores that flag and re-arms the edge with
// an epoll_ctl on every wait (Boost 1.81, epoll_reactor::start_op): one system call per
// keep-alive request. InputWait uses the flag instead: a wait completes at once when an edge
// came since the last wait completed, and is queued without a system call otherwise. So the
// caller must have read the socket until it was empty (a read that returned less than it
// asked for, or EAGAIN) since the last wait completed: input that arrives after that brings
// a new edge. Without such a read, use async_wait.
class ConnectionSocket {
  public:
    using Stream = boost::asio::basic_stream_socket<boost::asio::generic::stream_protocol,
                                                    boost::asio::io_context::executor_type>;
    using executor_type = Stream::executor_type;
    using wait_type = Stream::wait_type;
    static constexpr wait_type wait_read = Stream::wait_read;
    static constexpr wait_type wait_write = Stream::wait_write;

    // Owns `fd` (a connected stream socket of `protocol`) from now on. `sole`: this process
    // holds its only descriptor (it was just accepted), so its close takes it out of epoll by
    // itself and Asio's epoll_ctl DEL is skipped; not for a descriptor that another process
    // may hold (one passed over a Unix socket).
    ConnectionSocket(boost::asio::io_context& io, boost::asio::generic::stream_protocol protocol,
                     int fd, bool sole);
    ConnectionSocket(ConnectionSocket&& other) noexcept;
    ConnectionSocket& operator=(ConnectionSocket&&) = delete;
    ~ConnectionSocket();

    int native_handle() const { return fd_; }
    bool is_open() const { return fd_ >= 0; }
    executor_type get_executor() { return stream_.get_executor(); }

    // Asio's operations: the socket enters epoll at the first.
    template <class Handler>
    void async_wait(wait_type what, Handler&& handler) {
        registered().async_wait(what, std::forward<Handler>(handler));
    }
    template <class Buffers, class Handler>
    void async_read_some(const Buffers& buffers, Handler&& handler) {
        registered().async_read_some(buffers, std::forward<Handler>(handler));
    }
    template <class Buffers, class Handler>
    void async_write_some(const Buffers& buffers, Handler&& handler) {
        registered().async_write_some(buffers, std::forward<Handler>(handler));
    }

    // Bytes the kernel holds unread (FIONREAD); 0 on an error.
    std::size_t available() const;
    void shutdown_send();
    // Ends the pending operations (operation_aborted) and closes the descriptor.
    void close();
    // Ends the pending operations (operation_aborted) and gives the descriptor up, out of
    // epoll; -1 when it cannot be taken out.
    int release();

    class InputWait;

  private:
    // Asio's socket, with what InputWait needs of it: its reactor's data.
    class Registered : public Stream {
      public:
        using Stream::Stream;
        auto& implementation() { return impl_.get_implementation(); }
    };

    // The stream socket, in epoll. When the descriptor cannot enter epoll, the stream stays
    // closed and its operations complete with bad_descriptor.
    Registered& registered();

    Registered stream_;
    boost::asio::generic::stream_protocol protocol_;
    int fd_;
    bool sole_;
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

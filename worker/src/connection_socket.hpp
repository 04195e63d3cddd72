#pragma once

#include <prefork/common/edge_wait.hpp>

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <utility>

namespace prefork {

// A client connection's socket: the descriptor, and Asio's stream socket over it once the
// connection first waits for something. A client whose request came with its connection and
// that is answered at once (reads and writes tried at once are our own system calls) is
// served without the socket ever entering epoll: no epoll_ctl ADD, nothing to remove at its
// close. Its waits for input can cost no system call either (EdgeWait).
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

    // Waits until input may have come (`wait`, see EdgeWait): for a socket read until empty
    // since its last wait for input, or one that has not waited before.
    void async_wait_input(EdgeWait& wait, std::shared_ptr<void> keep, EdgeWait::Resume resume,
                          void* target);
    // Whether it has waited for something: in epoll.
    bool in_epoll() const { return stream_.is_open(); }

  private:
    using Registered = EdgeWait::Exposing<Stream>;

    // The stream socket, in epoll. When the descriptor cannot enter epoll, the stream stays
    // closed and its operations complete with bad_descriptor.
    Registered& registered();

    Registered stream_;
    boost::asio::generic::stream_protocol protocol_;
    int fd_;
    bool sole_;
    bool epoll_failed_ = false;
};

}  // namespace prefork

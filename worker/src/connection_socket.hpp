#pragma once

#include "tls_stream.hpp"

#include <prefork/common/edge_wait.hpp>

#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace prefork {

// A client connection's socket: the descriptor, and Asio's stream socket over it once the
// connection first waits for something. A client whose request came with its connection and
// that is answered at once (reads and writes tried at once are our own system calls) is
// served without the socket ever entering epoll: no epoll_ctl ADD, nothing to remove at its
// close. Its waits for input can cost no system call either (EdgeWait).
// Over TLS (start_tls), reads and writes go through the session, and a write waits for the
// socket to take more before it tries again.
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

    // Serves the connection over TLS from now on: `ssl` (owned from now on) is a server
    // session over this descriptor.
    void start_tls(SSL* ssl) { tls_ = std::make_unique<TlsStream>(ssl); }
    bool is_tls() const { return tls_ != nullptr; }
    TlsStream* tls() { return tls_.get(); }

    // A read or a write tried at once (our own system calls, MSG_DONTWAIT; through the TLS
    // session over TLS): would_block when it has to wait.
    std::size_t read_now(char* space, std::size_t room, boost::system::error_code& ec);
    std::size_t write_now(std::span<const boost::asio::const_buffer> buffers,
                          boost::system::error_code& ec);
    std::size_t write_now(boost::asio::const_buffer buffer, boost::system::error_code& ec) {
        return write_now(std::span<const boost::asio::const_buffer>(&buffer, 1), ec);
    }
    // Whether a read would find input that the socket no longer shows (TLS: held by the
    // session, decrypted or read ahead).
    bool holds_input() const { return tls_ && tls_->holds_input(); }

    // Asio's operations: the socket enters epoll at the first.
    template <class Handler>
    void async_wait(wait_type what, Handler&& handler) {
        registered().async_wait(what, std::forward<Handler>(handler));
    }
    // A write as soon as the socket takes some of `buffers` (whose bytes stay valid until then).
    template <class Buffers, class Handler>
    void async_write_some(const Buffers& buffers, Handler&& handler) {
        if (!tls_) return registered().async_write_some(buffers, std::forward<Handler>(handler));
        std::vector<boost::asio::const_buffer> copy(boost::asio::buffer_sequence_begin(buffers),
                                                    boost::asio::buffer_sequence_end(buffers));
        write_when_writable(std::move(copy), std::forward<Handler>(handler));
    }

    // Bytes the kernel (or the TLS session) holds unread; 0 on an error.
    std::size_t available() const;
    // Our side's end: TLS's close_notify, then the FIN.
    void shutdown_send();
    // What is written from now on is the last before the close or shutdown_send: TCP holds
    // it (TCP_CORK) so that it leaves with the FIN, and over TLS with close_notify, in as
    // few packets as it takes, not one for the response and another for the end.
    void hold_until_close();
    // Ends the pending operations (operation_aborted) and closes the descriptor.
    void close();
    // Ends the pending operations (operation_aborted) and gives the descriptor up, out of
    // epoll; -1 when it cannot be taken out.
    int release();

    // Waits until input may have come (`wait`, see EdgeWait): for a socket read until empty
    // since its last wait for input, or one that has not waited before.
    void async_wait_input(EdgeWait& wait, std::shared_ptr<void> keep, EdgeWait::Resume resume,
                          void* target);
    // Whether a read that returned less than it asked for left nothing behind that no edge
    // will report, so that the wait after it may be async_wait_input's: a TCP socket in
    // epoll whose last report from epoll had no FIN (EPOLLRDHUP), urgent data or error in
    // it (input that came after that report brings an edge of its own). The first call for
    // a socket has epoll watch for the FIN (one epoll_ctl, which re-arms the edge as the
    // wait it stands for would). Over TLS, what counts is the session's last read from the
    // socket. Not for a Unix socket (passed descriptors end a read too).
    bool short_read_emptied();
    // Whether it has waited for something: in epoll.
    bool in_epoll() const { return stream_.is_open(); }

  private:
    template <class Handler>
    void write_when_writable(std::vector<boost::asio::const_buffer> buffers, Handler&& handler) {
        registered().async_wait(wait_write, [this, buffers = std::move(buffers),
                                             handler = std::forward<Handler>(handler)](
                                                boost::system::error_code ec) mutable {
            std::size_t written = 0;
            if (!ec && is_open()) {
                written = write_now(buffers, ec);
                if (ec == boost::asio::error::would_block) {
                    return write_when_writable(std::move(buffers), std::move(handler));
                }
            } else if (!ec) {
                ec = boost::asio::error::bad_descriptor;
            }
            handler(ec, written);
        });
    }

    using Registered = EdgeWait::Exposing<Stream>;

    // The stream socket, in epoll. When the descriptor cannot enter epoll, the stream stays
    // closed and its operations complete with bad_descriptor.
    Registered& registered();

    Registered stream_;
    boost::asio::generic::stream_protocol protocol_;
    int fd_;
    bool sole_;
    bool epoll_failed_ = false;
    bool watches_peer_close_ = false;  // epoll reports the client's FIN (EPOLLRDHUP)
    std::unique_ptr<TlsStream> tls_;
};

}  // namespace prefork

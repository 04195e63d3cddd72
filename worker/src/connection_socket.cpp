#include "connection_socket.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/detail/socket_ops.hpp>

#include <array>
#include <cerrno>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace prefork {

namespace asio = boost::asio;

ConnectionSocket::ConnectionSocket(asio::io_context& io, asio::generic::stream_protocol protocol,
                                   int fd, bool sole)
    : stream_(io), protocol_(protocol), fd_(fd), sole_(sole) {}

ConnectionSocket::ConnectionSocket(ConnectionSocket&& other) noexcept
    : stream_(std::move(other.stream_)),
      protocol_(other.protocol_),
      fd_(std::exchange(other.fd_, -1)),
      sole_(other.sole_),
      epoll_failed_(other.epoll_failed_),
      watches_peer_close_(other.watches_peer_close_),
      tls_(std::move(other.tls_)) {}

ConnectionSocket::~ConnectionSocket() {
    if (fd_ >= 0 && !stream_.is_open()) ::close(fd_);  // otherwise the stream closes it
}

ConnectionSocket::Registered& ConnectionSocket::registered() {
    if (fd_ < 0 || stream_.is_open() || epoll_failed_) return stream_;
    boost::system::error_code ec;
    stream_.assign(protocol_, fd_, ec);
    if (ec) {
        log::error("cannot wait on a connection: epoll_ctl: ", ec.message());
        epoll_failed_ = true;  // its waits fail from now on (bad_descriptor)
        return stream_;
    }
    if (sole_) stream_.state() &= ~asio::detail::socket_ops::possible_dup;
    return stream_;
}

// Asio's own reads and writes would need its non-blocking flag set on each socket, which
// costs an ioctl per connection (the socket is non-blocking from its accept4 already).
std::size_t ConnectionSocket::write_now(std::span<const asio::const_buffer> buffers,
                                        boost::system::error_code& ec) {
    if (tls_) return tls_->write(buffers, ec);
    std::array<iovec, 4> iov;
    std::size_t count = 0;
    for (const auto& buffer : buffers) {
        if (count == iov.size()) break;
        iov[count++] = {const_cast<void*>(buffer.data()), buffer.size()};
    }
    msghdr message{};
    message.msg_iov = iov.data();
    message.msg_iovlen = count;
    ssize_t n;
    do {
        n = ::sendmsg(fd_, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        ec = boost::system::error_code(errno, boost::system::system_category());
        return 0;
    }
    ec = {};
    return static_cast<std::size_t>(n);
}

std::size_t ConnectionSocket::read_now(char* space, std::size_t room,
                                       boost::system::error_code& ec) {
    if (tls_) return tls_->read(space, room, ec);
    ssize_t n;
    do {
        n = ::recv(fd_, space, room, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        ec = boost::system::error_code(errno, boost::system::system_category());
        return 0;
    }
    ec = n == 0 ? boost::system::error_code(asio::error::eof) : boost::system::error_code();
    return static_cast<std::size_t>(n);
}

std::size_t ConnectionSocket::available() const {
    int bytes = 0;
    std::size_t held = tls_ ? tls_->pending() : 0;
    if (fd_ < 0 || ::ioctl(fd_, FIONREAD, &bytes) < 0 || bytes < 0) return held;
    return held + static_cast<std::size_t>(bytes);
}

void ConnectionSocket::hold_until_close() {
    int family = protocol_.family();
    if (fd_ < 0 || (family != AF_INET && family != AF_INET6)) return;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
}

void ConnectionSocket::shutdown_send() {
    if (fd_ < 0) return;
    if (tls_) tls_->shutdown();
    ::shutdown(fd_, SHUT_WR);
}

void ConnectionSocket::close() {
    if (fd_ < 0) return;
    if (tls_) tls_->shutdown();
    boost::system::error_code ignored;
    if (stream_.is_open()) {
        stream_.close(ignored);
    } else {
        ::close(fd_);
    }
    fd_ = -1;
}

int ConnectionSocket::release() {
    if (fd_ < 0) return -1;
    if (stream_.is_open()) {
        boost::system::error_code ec;
        stream_.release(ec);
        if (ec) {
            log::error("cannot take a connection out of epoll: ", ec.message());
            return -1;
        }
    }
    return std::exchange(fd_, -1);
}

bool ConnectionSocket::short_read_emptied() {
    int family = protocol_.family();
    if (!stream_.is_open() || (family != AF_INET && family != AF_INET6)) return false;
    if (tls_ && !tls_->socket_read_short()) return false;
    if (!watches_peer_close_) {
        return watches_peer_close_ = EdgeWait::watch_also(stream_.get_executor().context(), fd_,
                                                          stream_.reactor_data(), EPOLLRDHUP);
    }
    return (EdgeWait::last_reported(stream_.reactor_data()) &
            (EPOLLRDHUP | EPOLLPRI | EPOLLERR | EPOLLHUP)) == 0;
}

void ConnectionSocket::async_wait_input(EdgeWait& wait, std::shared_ptr<void> keep,
                                        EdgeWait::Resume resume, void* target) {
    bool fresh = fd_ >= 0 && !stream_.is_open();
    auto& stream = registered();
    asio::detail::reactor::per_descriptor_data none = nullptr;  // the wait fails at once
    wait.start(stream.get_executor().context(), stream.descriptor(),
               stream.is_open() ? stream.reactor_data() : none, fresh, std::move(keep), resume,
               target);
}

}  // namespace prefork

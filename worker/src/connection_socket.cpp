#include "connection_socket.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/detail/socket_ops.hpp>

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
      epoll_failed_(other.epoll_failed_) {}

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

std::size_t ConnectionSocket::available() const {
    int bytes = 0;
    if (fd_ < 0 || ::ioctl(fd_, FIONREAD, &bytes) < 0 || bytes < 0) return 0;
    return static_cast<std::size_t>(bytes);
}

void ConnectionSocket::shutdown_send() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void ConnectionSocket::close() {
    if (fd_ < 0) return;
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

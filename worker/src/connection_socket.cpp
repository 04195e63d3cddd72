#include "connection_socket.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/detail/fenced_block.hpp>
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
      sole_(other.sole_) {}

ConnectionSocket::~ConnectionSocket() {
    if (fd_ >= 0 && !stream_.is_open()) ::close(fd_);  // otherwise the stream closes it
}

ConnectionSocket::Registered& ConnectionSocket::registered() {
    if (fd_ < 0 || stream_.is_open()) return stream_;
    boost::system::error_code ec;
    stream_.assign(protocol_, fd_, ec);
    if (ec) {
        log::error("cannot wait on a connection: epoll_ctl: ", ec.message());
        return stream_;
    }
    if (sole_) stream_.implementation().state_ &= ~asio::detail::socket_ops::possible_dup;
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

ConnectionSocket::InputWait::InputWait()
    : reactor_op(boost::system::error_code(), &InputWait::perform, &InputWait::complete) {}

void ConnectionSocket::InputWait::start(ConnectionSocket& socket, std::shared_ptr<void> keep,
                                        Resume resume, void* target) {
    keep_ = std::move(keep);
    resume_ = resume;
    target_ = target;
    ec_ = {};
    auto& stream = socket.registered();
    auto& reactor = asio::use_service<asio::detail::reactor>(stream.get_executor().context());
    auto& impl = stream.implementation();
    // Speculative: performed at once if an edge came since the flag was last cleared.
    reactor.start_op(asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, this, false,
                     true);
}

// Called at once (an edge came since the last wait) or on the next edge. "Exhausted" clears
// the reactor's flag, so that the wait after this one is queued until another edge.
asio::detail::reactor_op::status ConnectionSocket::InputWait::perform(reactor_op*) {
    return done_and_exhausted;
}

void ConnectionSocket::InputWait::complete(void* owner, asio::detail::operation* base,
                                           const boost::system::error_code&, std::size_t) {
    auto* wait = static_cast<InputWait*>(base);
    auto keep = std::move(wait->keep_);  // `wait` is a member of what it keeps
    if (!owner) return;                  // the loop is being destroyed
    asio::detail::fenced_block fence(asio::detail::fenced_block::half);
    wait->resume_(wait->target_, wait->ec_);
}

}  // namespace prefork

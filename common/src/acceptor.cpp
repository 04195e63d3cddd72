#include <prefork/common/acceptor.hpp>

#include <prefork/common/log.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace prefork {
namespace {

// Connections taken per wake-up: enough to keep up under load, few enough that one
// worker does not take a whole burst while the others sit idle.
constexpr int kAcceptBatch = 16;
// Out of descriptors: stop accepting for a moment instead of spinning.
constexpr auto kPauseWhenOutOfDescriptors = std::chrono::milliseconds(100);

int socket_family(int fd) {
    int family = AF_UNSPEC;
    socklen_t length = sizeof(family);
    ::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &length);
    return family;
}

}  // namespace

Acceptor::Acceptor(boost::asio::io_context& io, UniqueFd listener, std::string name,
                   AcceptHandler on_accept)
    : listener_(io),
      pause_timer_(io),
      name_(std::move(name)),
      family_(socket_family(listener.get())),
      on_accept_(std::move(on_accept)) {
    int protocol = family_ == AF_INET || family_ == AF_INET6 ? IPPROTO_TCP : 0;
    listener_.assign(boost::asio::generic::stream_protocol(family_, protocol), listener.release());
    listener_.non_blocking(true);
}

Acceptor::~Acceptor() {
    edge_wait_->detach();
}

void Acceptor::start() {
    do_wait();
}

void Acceptor::close() {
    boost::system::error_code ignored;
    pause_timer_.cancel();
    listener_.close(ignored);
}

void Acceptor::pause() {
    paused_ = true;
    boost::system::error_code ignored;
    pause_timer_.cancel();  // a back-off in progress: resume() starts the one wait again
    listener_.cancel(ignored);
    edge_wait_->detach();
}

void Acceptor::resume() {
    if (!paused_ || !listener_.is_open()) return;
    paused_ = false;
    do_wait();
}

void Acceptor::do_wait() {
    std::uint64_t wait = ++wait_;
    if (!drained_ || edge_wait_->outstanding()) {  // outstanding: cancelled by a pause
        return listener_.async_wait(listener_.wait_read, [self = std::weak_ptr<Acceptor*>(self_),
                                                          wait](boost::system::error_code ec) {
            if (auto acceptor = self.lock()) (*acceptor)->on_wait_done(wait, ec);
        });
    }
    edge_wait_->start(
        listener_.get_executor().context(), listener_.descriptor(), listener_.reactor_data(), false,
        edge_wait_,
        [](void* acceptor, const boost::system::error_code& ec) {
            auto* self = static_cast<Acceptor*>(acceptor);
            self->on_wait_done(self->wait_, ec);
        },
        this);
}

void Acceptor::on_wait_done(std::uint64_t wait, const boost::system::error_code& ec) {
    if (wait != wait_ || ec == boost::asio::error::operation_aborted) return;  // paused, closed
    if (ec) {
        log::error("waiting on listener ", name_, ": ", ec.message());
        return;
    }
    on_readable();
}

void Acceptor::on_readable() {
    drained_ = false;
    for (int taken = 0; taken < kAcceptBatch && listener_.is_open() && !paused_; ++taken) {
        int fd =
            ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            on_accept_(UniqueFd(fd), family_);
            continue;
        }
        switch (errno) {
            case EAGAIN:
                drained_ = true;
                break;  // another worker took it, or the queue is empty
            case EINTR:
            case ECONNABORTED:
            case EPROTO:
            case EPERM:
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                log::error("accept4 on ", name_, ": ", std::strerror(errno), "; pausing accepts");
                return back_off();
            default:
                log::error("accept4 on ", name_, ": ", std::strerror(errno));
                break;
        }
        break;
    }
    if (listener_.is_open() && !paused_) do_wait();
}

void Acceptor::back_off() {
    pause_timer_.expires_after(kPauseWhenOutOfDescriptors);
    pause_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec && listener_.is_open() && !paused_) do_wait();
    });
}

}  // namespace prefork

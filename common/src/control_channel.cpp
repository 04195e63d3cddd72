#include <prefork/common/control_channel.hpp>

#include <prefork/common/log.hpp>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>

namespace prefork {

ControlChannel::ControlChannel(boost::asio::io_context& io, UniqueFd socket)
    : descriptor_(io, socket.release()) {
    descriptor_.non_blocking(true);
}

void ControlChannel::start(MessageHandler on_message, ClosedHandler on_closed) {
    on_message_ = std::move(on_message);
    on_closed_ = std::move(on_closed);
    do_wait();
}

// A wait that had completed before the channel was destroyed still runs, with success:
// `alive` tells it the channel is gone.
void ControlChannel::do_wait() {
    descriptor_.async_wait(
        boost::asio::posix::descriptor_base::wait_read,
        [this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
            if (alive.expired() || ec == boost::asio::error::operation_aborted) return;
            if (ec) return on_peer_gone();
            on_readable();
        });
}

void ControlChannel::on_readable() {
    if (receive_queued(kMessagesPerTurn) == Receive::more) do_wait();
}

// Handles the datagrams that are waiting, at most `limit` of them, so that a peer that
// floods the socket cannot keep the loop from everything else it has to do.
ControlChannel::Receive ControlChannel::receive_queued(std::size_t limit) {
    for (std::size_t taken = 0; taken < limit; ++taken) {
        ReceivedMessage received;
        std::error_code ec = recv_fds(descriptor_.native_handle(), received);
        if (ec == std::errc::resource_unavailable_try_again) return Receive::more;
        if (ec == std::errc::message_size) {
            log::error("control socket: dropped an oversized message");
            continue;
        }
        // A peer that exits with messages of ours unread resets the socket: the error comes
        // first, once, and what it had sent before is still there to be read.
        if (ec == std::errc::connection_reset && something_to_read()) continue;
        if (ec) {
            if (ec != std::errc::connection_reset)
                log::error("recvmsg on control socket: ", ec.message());
            on_peer_gone();
            return Receive::closed;
        }
        if (received.end_of_stream) {
            on_peer_gone();
            return Receive::closed;
        }
        if (received.payload.empty()) {
            log::debug("control socket: ignored an empty message");
            continue;
        }
        try {
            control::Message message = control::decode(received.payload);
            on_message_(std::move(message), std::move(received.fds));
        } catch (const control::ProtocolError& error) {
            log::error("control socket: invalid message: ", error.what());
        }
        if (!descriptor_.is_open()) return Receive::closed;  // the handler closed it
    }
    return Receive::more;
}

// Bytes of messages still queued (every message of the protocol has some).
bool ControlChannel::something_to_read() {
    int queued = 0;
    return ::ioctl(descriptor_.native_handle(), SIOCINQ, &queued) == 0 && queued > 0;
}

void ControlChannel::receive_queued() {
    // Only for a peer that has gone quiet (exited): there is an end to what it queued.
    while (descriptor_.is_open() && receive_queued(kMessagesPerTurn) == Receive::more) {
        if (!descriptor_.is_open() || !something_to_read()) return;
    }
}

void ControlChannel::send_in_order(const control::Message& message, std::vector<UniqueFd> fds) {
    if (!descriptor_.is_open()) {
        ++dropped_;
        return;
    }
    outgoing_.push_back({control::encode(message), std::move(fds)});
    if (!write_waiting_) send_waiting();
}

void ControlChannel::send_waiting() {
    while (!outgoing_.empty()) {
        Outgoing& next = outgoing_.front();
        std::vector<int> fds;
        for (const UniqueFd& fd : next.fds) fds.push_back(fd.get());
        std::error_code ec = send_fds(descriptor_.native_handle(), next.payload, fds);
        if (ec == std::errc::resource_unavailable_try_again) {
            write_waiting_ = true;
            descriptor_.async_wait(
                boost::asio::posix::descriptor_base::wait_write,
                [this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
                    if (alive.expired() || ec == boost::asio::error::operation_aborted) return;
                    write_waiting_ = false;
                    if (ec) return drop_waiting();
                    send_waiting();
                });
            return;
        }
        if (ec == std::errc::broken_pipe || ec == std::errc::connection_reset) {
            return drop_waiting();  // the peer is gone: nothing more will go
        }
        if (ec) {  // this message cannot go (too large, too many descriptors): the next may
            log::warning("sendmsg on control socket: ", ec.message(), ": message dropped");
            ++dropped_;
        }
        outgoing_.pop_front();  // our copies of the descriptors close: the peer has its own
    }
    if (auto on_sent = std::exchange(on_sent_, nullptr)) on_sent();
}

void ControlChannel::drop_waiting() {
    dropped_ += outgoing_.size();
    outgoing_.clear();
    if (auto on_sent = std::exchange(on_sent_, nullptr)) on_sent();
}

void ControlChannel::when_sent(std::function<void()> callback) {
    if (outgoing_.empty()) return callback();
    on_sent_ = std::move(callback);
}

void ControlChannel::on_peer_gone() {
    // The owner hears of it while the descriptor is still open (and its number not reused).
    if (auto on_closed = std::exchange(on_closed_, nullptr)) on_closed();
    close();
}

bool ControlChannel::send(const control::Message& message, std::span<const int> fds) {
    if (!descriptor_.is_open()) return false;
    std::error_code ec = send_fds(descriptor_.native_handle(), control::encode(message), fds);
    if (ec && ec != std::errc::broken_pipe && ec != std::errc::connection_reset) {
        log::warning("sendmsg on control socket: ", ec.message());
    }
    return !ec;
}

void ControlChannel::close() {
    boost::system::error_code ignored;
    descriptor_.close(ignored);
    write_waiting_ = false;
    drop_waiting();
}

ControlSocketPair make_control_socket_pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
        throw std::system_error(errno, std::system_category(),
                                "socketpair(AF_UNIX, SOCK_SEQPACKET)");
    }
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace prefork

#include <prefork/common/control_channel.hpp>

#include <prefork/common/log.hpp>

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

void ControlChannel::do_wait() {
    descriptor_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                           [this](boost::system::error_code ec) {
                               if (ec == boost::asio::error::operation_aborted) return;
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

void ControlChannel::receive_queued() {
    if (descriptor_.is_open()) (void)receive_queued(kMessagesPerTurn);
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

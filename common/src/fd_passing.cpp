#include <prefork/common/fd_passing.hpp>

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace prefork {
namespace {

std::error_code last_error() {
    return {errno, std::system_category()};
}

// Takes every descriptor of every SCM_RIGHTS header into `out`, so that each is owned
// (and closed on any later error) from here on.
void collect_fds(msghdr& msg, std::vector<UniqueFd>& out) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char* data = CMSG_DATA(c);
        for (std::size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, data + i * sizeof(int), sizeof(int));
            out.emplace_back(fd);
        }
    }
}

// recvmsg returned 0 with no descriptors: a datagram of zero bytes, or the peer has gone.
// Gone means shut down with nothing left to read.
bool peer_has_gone(int socket) {
    int queued = 0;
    if (::ioctl(socket, SIOCINQ, &queued) == 0 && queued > 0) return false;
    pollfd probe{socket, POLLRDHUP, 0};
    if (::poll(&probe, 1, 0) < 0) return true;
    return (probe.revents & (POLLRDHUP | POLLHUP)) != 0;
}

}  // namespace

std::error_code send_fds(int socket, std::string_view payload, std::span<const int> fds) {
    if (fds.size() > kMaxFdsPerMessage || payload.size() > kMaxMessageSize) {
        return std::make_error_code(std::errc::message_size);
    }
    iovec iov{const_cast<char*>(payload.data()), payload.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};

    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    for (;;) {
        ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
        if (n >= 0) return {};
        if (errno != EINTR) return last_error();
    }
}

std::error_code recv_fds(int socket, ReceivedMessage& out) {
    out = ReceivedMessage{};
    out.payload.resize(kMaxMessageSize);
    iovec iov{out.payload.data(), out.payload.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];

    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);

    ssize_t n;
    do {
        n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        out.payload.clear();
        return last_error();
    }
    collect_fds(msg, out.fds);
    if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
        out = ReceivedMessage{};  // closes whatever did arrive
        return std::make_error_code(std::errc::message_size);
    }
    out.payload.resize(static_cast<std::size_t>(n));
    out.end_of_stream = n == 0 && out.fds.empty() && peer_has_gone(socket);
    return {};
}

}  // namespace prefork

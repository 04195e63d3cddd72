#pragma once

#include <prefork/common/unique_fd.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace prefork {

// The most descriptors one message may carry (the kernel's SCM_MAX_FD is 253).
inline constexpr std::size_t kMaxFdsPerMessage = 64;
// The largest control message payload (one JSON object per datagram).
inline constexpr std::size_t kMaxMessageSize = 64 * 1024;

// Sends one datagram with `payload` and `fds` attached (SCM_RIGHTS) on an AF_UNIX
// SOCK_SEQPACKET socket. Retries on EINTR. The caller keeps ownership of `fds`.
// Returns an empty error_code on success; EAGAIN when the socket is non-blocking and full.
std::error_code send_fds(int socket, std::string_view payload, std::span<const int> fds);

// One datagram received by recv_fds, or the end of the stream (the peer has gone). A
// datagram of zero bytes is not the end: its payload is just empty.
struct ReceivedMessage {
    std::string payload;
    std::vector<UniqueFd> fds;
    bool end_of_stream = false;
};

// Receives one datagram and the descriptors that came with it, each already
// close-on-exec (MSG_CMSG_CLOEXEC). Retries on EINTR. A truncated payload or truncated
// control data (more descriptors than kMaxFdsPerMessage) is an error (EMSGSIZE) and every
// descriptor that did arrive is closed, so nothing leaks.
std::error_code recv_fds(int socket, ReceivedMessage& out);

}  // namespace prefork

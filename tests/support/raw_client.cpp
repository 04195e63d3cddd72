#include "raw_client.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace prefork::testing {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

RawClient::RawClient(std::uint16_t port, int receive_buffer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) {
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        int error = errno;
        ::close(fd_);
        throw std::runtime_error(std::string("connect: ") + std::strerror(error));
    }
}

RawClient::~RawClient() {
    if (fd_ >= 0) ::close(fd_);
}

std::uint16_t RawClient::local_port() const {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

bool RawClient::send(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::size_t RawClient::send_some(std::string_view bytes) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) send_failed_ = true;
    return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::string RawClient::read_some(std::chrono::milliseconds timeout, bool* eof, std::size_t max) {
    if (eof) *eof = false;
    pollfd ready{fd_, POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) <= 0) return {};
    std::string data(std::min<std::size_t>(max, 65536), '\0');
    ssize_t n = ::recv(fd_, data.data(), data.size(), 0);
    if (n < 0 && errno == ECONNRESET) reset_by_peer_ = true;
    if (n <= 0) {
        if (eof) *eof = n == 0 || errno != EAGAIN;
        return {};
    }
    data.resize(static_cast<std::size_t>(n));
    return data;
}

std::string RawClient::read_until(const std::string& needle, std::chrono::milliseconds timeout,
                                  std::string seen) {
    for (auto deadline = Clock::now() + timeout;
         seen.find(needle) == std::string::npos && Clock::now() < deadline;) {
        bool eof = false;
        seen += read_some(100ms, &eof);
        if (eof) break;
    }
    return seen;
}

std::string RawClient::read_to_end(std::chrono::milliseconds timeout, bool* closed) {
    std::string all;
    if (closed) *closed = false;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
        bool eof = false;
        all += read_some(100ms, &eof);
        if (eof) {
            if (closed) *closed = true;
            break;
        }
    }
    return all;
}

void RawClient::reset() {
    linger option{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof option);
    ::close(fd_);
    fd_ = -1;
}

std::string dechunk(const std::string& raw, bool* complete) {
    std::string body;
    std::size_t at = raw.find("\r\n\r\n");
    *complete = false;
    if (at == std::string::npos) return body;
    at += 4;
    while (at < raw.size()) {
        std::size_t line_end = raw.find("\r\n", at);
        if (line_end == std::string::npos) break;
        std::size_t size = std::stoul(raw.substr(at, line_end - at), nullptr, 16);
        if (size == 0) {
            *complete = raw.compare(line_end, 4, "\r\n\r\n") == 0;
            break;
        }
        body += raw.substr(line_end + 2, size);  // all of a chunk cut short that arrived
        at = line_end + 2 + size + 2;
    }
    return body;
}

std::string get_request(const std::string& target, const std::string& extra_fields) {
    return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra_fields + "\r\n";
}

std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t count = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
        ++count;
    }
    return count;
}

std::string read_until_count(RawClient& client, const std::string& part, std::size_t count,
                             std::chrono::milliseconds timeout) {
    std::string seen;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (count_of(seen, part) < count && std::chrono::steady_clock::now() < end) {
        bool eof = false;
        seen += client.read_some(std::chrono::milliseconds(100), &eof);
        if (eof) break;
    }
    return seen;
}

}  // namespace prefork::testing

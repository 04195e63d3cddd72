#include "sporadic_clients.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <random>

namespace prefork::testing {
namespace {

using Clock = std::chrono::steady_clock;

int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// True when the server has ended the connection while it was idle: readable at once, with
// an end of stream or a reset (a server never sends anything unasked on HTTP/1.1).
bool ended_while_idle(int fd) {
    pollfd probe{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&probe, 1, 0) <= 0) return false;
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || n > 0;
}

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

struct Answer {
    int status = 0;
    std::string body;
    bool close = false;  // the response said Connection: close
};

// One response, read within 10 s; nullopt (and `why`) when the connection ended first.
std::optional<Answer> read_answer(int fd, std::string& why) {
    std::string data;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    auto fill = [&]() -> bool {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            why = "no answer within 10 s";
            return false;
        }
        pollfd probe{fd, POLLIN, 0};
        if (::poll(&probe, 1, static_cast<int>(left.count())) <= 0) {
            why = "no answer within 10 s";
            return false;
        }
        char buffer[16384];
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n == 0) {
            why = data.empty() ? "empty reply: the server closed the connection"
                               : "the server closed the connection during the response";
            return false;
        }
        if (n < 0) {
            why = std::string("recv: ") + std::strerror(errno);
            return false;
        }
        data.append(buffer, static_cast<std::size_t>(n));
        return true;
    };
    std::size_t head_end;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) return std::nullopt;
    }
    Answer answer;
    std::string head = data.substr(0, head_end);
    if (head.size() < 12) {
        why = "a malformed status line";
        return std::nullopt;
    }
    answer.status = std::atoi(head.c_str() + 9);
    std::size_t length = 0;
    for (std::size_t at = head.find("\r\n"); at != std::string::npos;
         at = head.find("\r\n", at + 2)) {
        std::string line = head.substr(at + 2, head.find("\r\n", at + 2) - at - 2);
        for (auto& c : line) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (line.starts_with("content-length:")) length = std::stoul(line.substr(15));
        if (line.starts_with("connection:") && line.find("close") != std::string::npos) {
            answer.close = true;
        }
    }
    while (data.size() < head_end + 4 + length) {
        if (!fill()) return std::nullopt;
    }
    answer.body = data.substr(head_end + 4, length);
    return answer;
}

}  // namespace

SporadicClients::SporadicClients(std::uint16_t port, Options options)
    : port_(port), options_(options), deadline_(Clock::now() + options.duration) {
    for (int i = 0; i < options_.connections; ++i) {
        threads_.emplace_back([this, i] { run_client(static_cast<unsigned>(i) * 7919u + 1); });
    }
}

SporadicClients::~SporadicClients() {
    wait();
}

SporadicClients::Result SporadicClients::wait() {
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
    std::lock_guard lock(errors_mutex_);
    return {requests_.load(), failed_.load(), closed_.load(), errors_};
}

void SporadicClients::record(const std::string& what, bool failed, bool closed) {
    if (failed) ++failed_;
    if (closed) ++closed_;
    std::lock_guard lock(errors_mutex_);
    if (errors_.size() < 10) errors_.push_back(what);
}

void SporadicClients::run_client(unsigned seed) {
    std::mt19937 random(seed);
    std::uniform_int_distribution<long> pause(options_.min_pause.count(),
                                              options_.max_pause.count());
    std::uniform_int_distribution<int> body_size(1, 4000);
    int fd = -1;
    for (;;) {
        auto wake = Clock::now() + std::chrono::milliseconds(pause(random));
        if (wake >= deadline_) break;
        std::this_thread::sleep_until(wake);
        if (fd >= 0 && ended_while_idle(fd)) {
            record("the server closed an idle keep-alive connection", false, true);
            ::close(fd);
            fd = -1;
        }
        if (fd < 0 && (fd = connect_to(port_)) < 0) {
            record(std::string("connect: ") + std::strerror(errno), true, false);
            continue;
        }
        std::string request, expected;
        if (random() % 2 == 0) {
            request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            expected = "Hello, World!";
        } else {
            expected.resize(static_cast<std::size_t>(body_size(random)));
            for (auto& c : expected) c = static_cast<char>(random());
            request =
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
                "\r\nContent-Length: " +
                std::to_string(expected.size()) + "\r\n\r\n" + expected;
        }
        ++requests_;
        std::string why;
        std::optional<Answer> answer;
        if (send_all(fd, request)) {
            answer = read_answer(fd, why);
        } else {
            why = std::string("send: ") + std::strerror(errno);
        }
        if (!answer) {
            record(request.substr(0, request.find(' ')) + ": " + why, true, true);
            ::close(fd);
            fd = -1;
            continue;
        }
        if (answer->status != 200 || answer->body != expected) {
            record(request.substr(0, request.find(' ')) + ": status " +
                       std::to_string(answer->status) + ", " + std::to_string(answer->body.size()) +
                       " bytes, not the expected " + std::to_string(expected.size()),
                   true, false);
        }
        if (answer->close) {
            record("a response said Connection: close", false, true);
            ::close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) ::close(fd);
}

}  // namespace prefork::testing

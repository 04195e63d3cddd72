#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prefork::testing {

// A bare TCP client on 127.0.0.1 that does exactly what a test tells it, and no more: what
// arrives, and when. Every read waits at most its timeout (poll), so a test never hangs.
class RawClient {
  public:
    // Connects to 127.0.0.1:port (throws on failure); `receive_buffer` (bytes, 0: the
    // system's) is set before connecting, so that the window offered is small from the start.
    explicit RawClient(std::uint16_t port, int receive_buffer = 0);
    ~RawClient();
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    // The socket, for a test's own system calls; the client still owns and closes it.
    int fd() const { return fd_; }
    // The client's port, to find its connection in the kernel's tables (/proc/net/tcp).
    std::uint16_t local_port() const;

    // All of `bytes`, waiting for room; false when the server has closed or reset.
    bool send(std::string_view bytes);
    // What of `bytes` fits now, without waiting (0 when nothing does or the server is gone).
    std::size_t send_some(std::string_view bytes);
    // Whether a send_some failed: the server reset the connection.
    bool send_failed() const { return send_failed_; }

    // One read of at most `max` bytes of what arrives within `timeout` ("" at end of
    // stream, on a reset or at the timeout; `eof` tells the first two apart).
    std::string read_some(std::chrono::milliseconds timeout, bool* eof = nullptr,
                          std::size_t max = 65536);
    // Reads until `needle` has arrived, the server closes, or `timeout` passes; returns
    // `seen` with what arrived appended.
    std::string read_until(const std::string& needle, std::chrono::milliseconds timeout,
                           std::string seen = {});
    // Everything until the server closes; `closed` says whether it did within `timeout`.
    std::string read_to_end(std::chrono::milliseconds timeout, bool* closed = nullptr);
    // Whether the server ended the connection with a reset rather than an orderly close.
    bool reset_by_peer() const { return reset_by_peer_; }

    // Hangs up with a reset rather than a FIN.
    void reset();

  private:
    int fd_ = -1;
    bool reset_by_peer_ = false;
    bool send_failed_ = false;
};

// "GET target HTTP/1.1" with a Host field and `extra_fields` (each ending in CRLF).
std::string get_request(const std::string& target, const std::string& extra_fields = "");

// How many times `part` occurs in `text`.
std::size_t count_of(const std::string& text, const std::string& part);

// What `client` receives until `part` has arrived `count` times, it closes, or `timeout`.
std::string read_until_count(RawClient& client, const std::string& part, std::size_t count,
                             std::chrono::milliseconds timeout);

// The body of a chunked message (after its head), decoded, a chunk cut short with what
// arrived of it; `complete` says whether the last chunk was there.
std::string dechunk(const std::string& raw, bool* complete);

}  // namespace prefork::testing

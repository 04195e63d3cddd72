#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

namespace prefork::log {

// While it exists, writing a line to stderr never blocks the event loop, even when
// whatever reads stderr has stalled (a log shipper, a paused pager): a line stderr cannot
// take now waits in a buffer of at most `buffer_limit` bytes and is written as soon as it
// can be; when the buffer is full, lines are dropped and counted, and once stderr drains
// one line says how many were lost. Each line is written with one write() of at most
// kMaxLine bytes, so lines of different processes never interleave.
//
// The writes happen on the loop's thread; a line logged on another thread is posted to
// the loop. One per process, made on the loop's thread; it must outlive every other
// thread that logs. Before it exists and after it has gone, lines are written directly.
class LogOutput {
  public:
    LogOutput(boost::asio::io_context& io, std::size_t buffer_limit);
    ~LogOutput();
    LogOutput(const LogOutput&) = delete;
    LogOutput& operator=(const LogOutput&) = delete;

    // From any thread: writes `line` (ending in '\n'), now or later, or drops it.
    static void write(std::string line);

    // Writes what waits in the buffer, waiting for stderr at most `limit` (before an exec,
    // which would lose it). On the loop's thread.
    void write_pending(std::chrono::milliseconds limit);

    // PREFORK_LOG_BUFFER, in bytes (default 1 MiB, at least 16 KiB).
    static std::size_t buffer_limit_from_environment();

  private:
    enum class Mode { direct, non_blocking, socket };

    void write_on_loop(std::string line);
    void flush();
    // Bytes of `data` written now: all, part (a terminal, a socket), or none.
    std::size_t try_write(const char* data, std::size_t size);
    void retry_later();

    boost::asio::io_context& io_;
    std::thread::id loop_thread_;
    boost::asio::steady_timer retry_timer_;
    int fd_ = 2;  // our own description of stderr in non-blocking mode, else 2
    Mode mode_ = Mode::direct;
    std::string pending_;  // whole lines, oldest first
    std::size_t buffer_limit_;
    std::uint64_t dropped_since_report_ = 0;
    std::chrono::milliseconds retry_interval_;
    bool retrying_ = false;
    bool stopping_ = false;
};

// Lines dropped by this process's LogOutput since it started (for the metrics).
std::uint64_t dropped_line_count();

}  // namespace prefork::log

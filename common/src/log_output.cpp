#include <prefork/common/log_output.hpp>

#include <prefork/common/log.hpp>

#include <boost/asio/post.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace prefork::log {
namespace {

// While stderr takes nothing, tries again ever less often, up to this.
constexpr auto kFirstRetry = std::chrono::milliseconds(5);
constexpr auto kLongestRetry = std::chrono::milliseconds(200);
constexpr auto kExitWait = std::chrono::seconds(1);
constexpr std::size_t kDefaultBufferLimit = 1024 * 1024;
constexpr std::size_t kMinBufferLimit = 16 * 1024;

std::atomic<LogOutput*> g_output{nullptr};
std::atomic<std::uint64_t> g_dropped{0};

}  // namespace

std::uint64_t dropped_line_count() {
    return g_dropped.load(std::memory_order_relaxed);
}

std::size_t LogOutput::buffer_limit_from_environment() {
    const char* text = std::getenv("PREFORK_LOG_BUFFER");
    if (text == nullptr || *text == '\0') return kDefaultBufferLimit;
    std::size_t value = 0;
    const char* end = text + std::strlen(text);
    auto [stop, ec] = std::from_chars(text, end, value);
    if (ec != std::errc{} || stop != end) return kDefaultBufferLimit;
    return std::max(value, kMinBufferLimit);
}

// A pipe or a terminal is opened again, as a description of our own that can be made
// non-blocking without touching the one the processes that handlers start share. A
// socket (journald's stream) cannot be, but takes MSG_DONTWAIT. A file never blocks.
LogOutput::LogOutput(boost::asio::io_context& io, std::size_t buffer_limit)
    : io_(io),
      loop_thread_(std::this_thread::get_id()),
      retry_timer_(io),
      buffer_limit_(buffer_limit),
      retry_interval_(kFirstRetry) {
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) == 0) {
        if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
            int own = ::open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
            if (own >= 0) {
                fd_ = own;
                mode_ = Mode::non_blocking;
            }
        } else if (S_ISSOCK(st.st_mode)) {
            mode_ = Mode::socket;
        }
    }
    g_output.store(this, std::memory_order_release);
}

LogOutput::~LogOutput() {
    g_output.store(nullptr, std::memory_order_release);
    stopping_ = true;
    // The last lines (why the process stops) are worth a moment's wait, not more.
    write_pending(kExitWait);
    if (mode_ == Mode::non_blocking) ::close(fd_);
}

void LogOutput::write_pending(std::chrono::milliseconds limit) {
    auto give_up_at = std::chrono::steady_clock::now() + limit;
    for (flush(); !pending_.empty() && std::chrono::steady_clock::now() < give_up_at; flush()) {
        pollfd writable{mode_ == Mode::non_blocking ? fd_ : STDERR_FILENO, POLLOUT, 0};
        ::poll(&writable, 1, 50);
    }
}

void LogOutput::write(std::string line) {
    LogOutput* output = g_output.load(std::memory_order_acquire);
    if (output == nullptr) return write_line(STDERR_FILENO, line);
    if (std::this_thread::get_id() == output->loop_thread_) {
        return output->write_on_loop(std::move(line));
    }
    boost::asio::post(output->io_, [line = std::move(line)]() mutable {
        LogOutput* now = g_output.load(std::memory_order_acquire);
        if (now != nullptr) {
            now->write_on_loop(std::move(line));
        } else {
            write_line(STDERR_FILENO, line);
        }
    });
}

void LogOutput::write_on_loop(std::string line) {
    if (pending_.empty()) {
        std::size_t written = try_write(line.data(), line.size());
        if (written == line.size()) return;
        if (written > 0) {  // a terminal or a socket took part of it: the rest goes next
            pending_.assign(line, written);
            return retry_later();
        }
    }
    if (pending_.size() + line.size() > buffer_limit_) {
        ++dropped_since_report_;
        g_dropped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    pending_ += line;
    retry_later();
}

// Writes what waits, a few whole lines at a time (at most kMaxLine bytes, so that a pipe
// takes each write whole or not at all).
void LogOutput::flush() {
    bool progressed = false;
    while (!pending_.empty()) {
        std::size_t size = pending_.size();
        if (size > kMaxLine) {
            std::size_t end = pending_.rfind('\n', kMaxLine - 1);
            size = end == std::string::npos ? pending_.find('\n') + 1 : end + 1;
        }
        std::size_t written = try_write(pending_.data(), size);
        pending_.erase(0, written);
        progressed = progressed || written > 0;
        if (written < size) {
            if (progressed) retry_interval_ = kFirstRetry;  // it drains: keep up with it
            return retry_later();
        }
    }
    retry_interval_ = kFirstRetry;
    if (dropped_since_report_ > 0) {
        std::string report =
            format_line(Level::warning, concat(dropped_since_report_, " log line",
                                               dropped_since_report_ == 1 ? "" : "s",
                                               " dropped: stderr was not taking them"));
        dropped_since_report_ = 0;
        write_on_loop(std::move(report));
    }
}

std::size_t LogOutput::try_write(const char* data, std::size_t size) {
    if (mode_ == Mode::direct) {
        write_line(STDERR_FILENO, std::string(data, size));
        return size;
    }
    for (;;) {
        ssize_t n = mode_ == Mode::socket
                        ? ::send(STDERR_FILENO, data, size, MSG_DONTWAIT | MSG_NOSIGNAL)
                        : ::write(fd_, data, size);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return size;  // stderr is gone (EPIPE, EBADF): nothing to wait for
    }
}

void LogOutput::retry_later() {
    if (retrying_ || stopping_) return;
    retrying_ = true;
    retry_timer_.expires_after(retry_interval_);
    retry_interval_ = std::min<std::chrono::milliseconds>(2 * retry_interval_, kLongestRetry);
    retry_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;  // cancelled: destroyed
        retrying_ = false;
        flush();
    });
}

}  // namespace prefork::log

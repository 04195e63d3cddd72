#include <prefork/common/log.hpp>

#include <prefork/common/log_output.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace prefork::log {
namespace {

// Set once at start-up, before any thread exists; read-only afterwards.
std::string g_role = "prefork";
Format g_format = Format::text;
std::atomic<Level> g_level{Level::info};

}  // namespace

std::string timestamp() {
    auto now = std::chrono::system_clock::now();
    auto seconds = std::chrono::system_clock::to_time_t(now);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char buffer[40];
    std::size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(buffer + n, sizeof(buffer) - n, ".%03dZ", static_cast<int>(millis.count()));
    return buffer;
}

namespace {

std::string json_string(std::string_view text) {
    return boost::json::serialize(boost::json::string(text));
}

}  // namespace

void write_line(int fd, const std::string& line) {
    const char* data = line.data();
    std::size_t left = line.size();
    while (left > 0) {
        ssize_t n = ::write(fd, data, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        data += n;
        left -= static_cast<std::size_t>(n);
    }
}

const char* level_name(Level level) {
    switch (level) {
        case Level::debug:
            return "debug";
        case Level::info:
            return "info";
        case Level::warning:
            return "warning";
        case Level::error:
            return "error";
    }
    return "info";
}

std::optional<Level> parse_level(std::string_view name) {
    for (Level level : {Level::debug, Level::info, Level::warning, Level::error}) {
        if (name == level_name(level)) return level;
    }
    return std::nullopt;
}

void set_role(std::string_view role) {
    g_role = role;
}
void set_format(Format format) {
    g_format = format;
}
Format format() {
    return g_format;
}
void set_level(Level level) {
    g_level = level;
}
bool enabled(Level level) {
    return level >= g_level.load(std::memory_order_relaxed);
}

std::string cut_to(std::string_view text, std::size_t size) {
    if (text.size() <= size) return std::string(text);
    std::string marker = "...[" + std::to_string(text.size()) + " bytes, cut]";
    std::size_t keep = size > marker.size() ? size - marker.size() : 0;
    while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
    std::string cut(text.substr(0, keep));
    cut += marker;
    return cut;
}

namespace {

std::string build_line(Level level, std::string_view message) {
    std::string line;
    line.reserve(message.size() + 80);
    if (g_format == Format::json) {
        line += "{\"time\":\"" + timestamp() + "\",\"level\":\"" + level_name(level) +
                "\",\"role\":\"" + g_role + "\",\"pid\":" + std::to_string(::getpid()) +
                ",\"msg\":" + json_string(message) + "}\n";
    } else {
        line += timestamp() + " " + level_name(level) + " " + g_role + "[" +
                std::to_string(::getpid()) + "] ";
        // One event, one line: a line break inside the message is written as \n.
        for (char c : message) {
            if (c == '\n') {
                line += "\\n";
            } else if (c == '\r') {
                line += "\\r";
            } else {
                line += c;
            }
        }
        line += '\n';
    }
    return line;
}

}  // namespace

std::string format_line(Level level, std::string_view message) {
    std::string line = build_line(level, message);
    if (line.size() <= kMaxLine) return line;
    // The longest start of the message whose line fits: escaping (JSON's \u0001, a line
    // break) makes a byte of the message take up to six of the line, so it is searched for.
    std::size_t fits = 0, too_long = message.size();
    while (too_long - fits > 1) {
        std::size_t keep = fits + (too_long - fits) / 2;
        if (build_line(level, cut_to(message, keep)).size() <= kMaxLine) {
            fits = keep;
        } else {
            too_long = keep;
        }
    }
    return build_line(level, cut_to(message, fits));
}

void write(Level level, std::string_view message) {
    LogOutput::write(format_line(level, message));
}

}  // namespace prefork::log

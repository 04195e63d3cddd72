#pragma once

// One event per line on stderr, at most kMaxLine bytes, written with a single write() so
// that lines of different processes sharing the stream never interleave; through the
// process's LogOutput (log_output.hpp), so that a stalled stderr never blocks a loop.

#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace prefork::log {

enum class Level { debug, info, warning, error };
enum class Format { text, json };

// The process's role in every line ("master", "worker").
void set_role(std::string_view role);
void set_format(Format format);
void set_level(Level level);
bool enabled(Level level);

const char* level_name(Level level);
// "debug", "info", "warning" or "error"; nullopt for anything else.
std::optional<Level> parse_level(std::string_view name);

void write(Level level, std::string_view message);

// PIPE_BUF: a pipe takes a write of at most this many bytes whole, never interleaved.
inline constexpr std::size_t kMaxLine = 4096;
// The line write() logs for `message` (cut to fit kMaxLine), ending in '\n'.
std::string format_line(Level level, std::string_view message);
// `text` itself when it has at most `size` bytes, else its start and a note of the cut, at
// most `size` bytes in all (never splitting a UTF-8 sequence), or the note alone when
// `size` is shorter than the note.
std::string cut_to(std::string_view text, std::size_t size);

Format format();
// The current time as every line starts with it (UTC, milliseconds).
std::string timestamp();
// Writes one whole line to `fd` with a single write() (retried only if cut short).
void write_line(int fd, const std::string& line);

template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return std::move(out).str();
}

template <class... Parts>
void debug(const Parts&... parts) {
    if (enabled(Level::debug)) write(Level::debug, concat(parts...));
}
template <class... Parts>
void info(const Parts&... parts) {
    if (enabled(Level::info)) write(Level::info, concat(parts...));
}
template <class... Parts>
void warning(const Parts&... parts) {
    if (enabled(Level::warning)) write(Level::warning, concat(parts...));
}
template <class... Parts>
void error(const Parts&... parts) {
    if (enabled(Level::error)) write(Level::error, concat(parts...));
}

}  // namespace prefork::log

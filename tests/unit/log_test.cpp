#include <prefork/common/log.hpp>
#include <prefork/common/log_output.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace prefork::log {
namespace {

using namespace std::chrono_literals;

bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        auto lead = static_cast<unsigned char>(text[i]);
        std::size_t length = lead < 0x80           ? 1
                             : (lead >> 5) == 0x06 ? 2
                             : (lead >> 4) == 0x0E ? 3
                             : (lead >> 3) == 0x1E ? 4
                                                   : 0;
        if (length == 0 || i + length > text.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
        }
        i += length;
    }
    return true;
}

std::string repeat(std::string_view piece, std::size_t total_bytes) {
    std::string text;
    while (text.size() + piece.size() <= total_bytes) text += piece;
    return text;
}

std::string cut_marker(std::size_t original_size) {
    return "...[" + std::to_string(original_size) + " bytes, cut]";
}

// Lines come out in JSON while it exists.
class JsonLines {
  public:
    JsonLines() : before_(format()) { set_format(Format::json); }
    ~JsonLines() { set_format(before_); }
    JsonLines(const JsonLines&) = delete;
    JsonLines& operator=(const JsonLines&) = delete;

  private:
    Format before_;
};

TEST(Log, AShortMessageIsLoggedUnchanged) {
    EXPECT_EQ(cut_to("hello", 5), "hello");
    EXPECT_EQ(cut_to("hello", 4096), "hello");
    std::string line = format_line(Level::info, "hello, world");
    EXPECT_TRUE(line.ends_with(" hello, world\n")) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(Log, AShortMessageIsLoggedUnchangedInJson) {
    JsonLines json;
    std::string message = "caf\xC3\xA9 \"quoted\" \\ tab\t";
    std::string line = format_line(Level::warning, message);
    ASSERT_TRUE(line.ends_with("\n"));
    boost::json::value parsed =
        boost::json::parse(std::string_view(line).substr(0, line.size() - 1));
    EXPECT_EQ(parsed.at("msg").as_string(), message);
    EXPECT_EQ(parsed.at("level").as_string(), "warning");
}

TEST(Log, AHugeMessageIsCutToOneLineThatAPipeTakesWhole) {
    std::string message(20 * 1024, 'a');
    std::string line = format_line(Level::info, message);
    EXPECT_LE(line.size(), kMaxLine);
    EXPECT_GT(line.size(), kMaxLine - 100) << "cut by far more than it had to be";
    EXPECT_TRUE(line.ends_with(cut_marker(message.size()) + "\n")) << line.substr(line.size() - 80);
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
}

TEST(Log, AHugeMessageOfEscapesAndMultibyteCharactersIsCutToValidJson) {
    JsonLines json;
    const std::string messages[] = {
        std::string(20 * 1024, '\x01'),                                // control
        repeat("\xC3\xA9", 20 * 1024),                                 // é
        repeat("\x01\xC3\xA9", 20 * 1024),                             // control, é
        repeat("a\xE2\x82\xAC\"\\\x1F\xF0\x9F\x98\x80\n", 20 * 1024),  // €, quote, 😀
        std::string(600, '\x01') + std::string(20 * 1024, 'a'),        // escapes first
    };
    for (const std::string& message : messages) {
        SCOPED_TRACE("message starting " + boost::json::serialize(boost::json::value(
                                               std::string_view(message).substr(0, 12))));
        std::string line = format_line(Level::error, message);
        EXPECT_LE(line.size(), kMaxLine);
        ASSERT_TRUE(line.ends_with("\n"));
        EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
        boost::system::error_code ec;
        boost::json::value parsed =
            boost::json::parse(std::string_view(line).substr(0, line.size() - 1), ec);
        ASSERT_FALSE(ec) << ec.message() << ": " << line.substr(0, 200);
        ASSERT_TRUE(parsed.at("msg").is_string());
        std::string_view logged = parsed.at("msg").as_string();
        EXPECT_TRUE(logged.ends_with(cut_marker(message.size())));
        std::string_view kept = logged.substr(0, logged.size() - cut_marker(message.size()).size());
        EXPECT_TRUE(std::string_view(message).starts_with(kept)) << "not the message's start";
        // The line is filled: what is kept is not thrown away for the escaping's sake.
        EXPECT_GT(line.size(), kMaxLine - 16) << "kept only " << kept.size() << " bytes";
    }
}

TEST(Log, ALineBreakInsideAMessageStaysOnItsLine) {
    std::string line = format_line(Level::error, "first\nsecond\r\nthird");
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
    EXPECT_TRUE(line.ends_with("first\\nsecond\\r\\nthird\n")) << line;
}

TEST(Log, CutToNeverSplitsAUtf8Sequence) {
    std::string text = repeat("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 300);  // a é € 😀
    ASSERT_EQ(text.size(), 300u);
    std::string marker = cut_marker(text.size());
    for (std::size_t size = marker.size(); size < text.size(); ++size) {
        std::string cut = cut_to(text, size);
        ASSERT_LE(cut.size(), size) << "size " << size;
        EXPECT_GE(cut.size() + 3, size) << "cut more than a partial sequence, size " << size;
        ASSERT_TRUE(cut.ends_with(marker)) << "size " << size;
        std::string_view kept = std::string_view(cut).substr(0, cut.size() - marker.size());
        EXPECT_TRUE(std::string_view(text).starts_with(kept)) << "size " << size;
        EXPECT_TRUE(is_valid_utf8(kept)) << "split a sequence at size " << size;
    }
    EXPECT_EQ(cut_to(text, text.size()), text);
}

// While it exists, the test process's stderr is the write end of a pipe whose read end the
// test holds (non-blocking); the real stderr comes back at the end, whatever happens.
class LogOutputOnAPipe : public ::testing::Test {
  protected:
    void SetUp() override {
        saved_stderr_.reset(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 10));
        ASSERT_TRUE(saved_stderr_) << std::strerror(errno);
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0) << std::strerror(errno);
        read_end_.reset(fds[0]);
        UniqueFd write_end(fds[1]);
        ASSERT_EQ(::fcntl(read_end_.get(), F_SETFL, O_NONBLOCK), 0);
        ASSERT_EQ(::dup2(write_end.get(), STDERR_FILENO), STDERR_FILENO) << std::strerror(errno);
    }
    void TearDown() override { restore_stderr(); }
    ~LogOutputOnAPipe() override { restore_stderr(); }

    void restore_stderr() {
        if (!saved_stderr_) return;
        ::dup2(saved_stderr_.get(), STDERR_FILENO);
        saved_stderr_.reset();
    }

    // Fills the pipe, from a description of its own, until it takes not one byte more.
    std::size_t fill_pipe() {
        UniqueFd filler(::open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        EXPECT_TRUE(filler) << std::strerror(errno);
        std::string chunk(64 * 1024, 'F');
        std::size_t filled = 0;
        for (std::size_t size : {chunk.size(), std::size_t{1}}) {
            for (;;) {
                ssize_t n = ::write(filler.get(), chunk.data(), size);
                if (n <= 0) break;
                filled += static_cast<std::size_t>(n);
            }
            EXPECT_EQ(errno, EAGAIN);
        }
        return filled;
    }

    // Everything the pipe holds now.
    std::string drain() {
        std::string out;
        char buffer[16 * 1024];
        for (;;) {
            ssize_t n = ::read(read_end_.get(), buffer, sizeof(buffer));
            if (n <= 0) break;
            out.append(buffer, static_cast<std::size_t>(n));
        }
        return out;
    }

    // Runs `io` and reads the pipe until `done(read so far)` or `limit` has passed.
    template <class Done>
    std::string run_and_read(boost::asio::io_context& io, std::chrono::milliseconds limit,
                             Done done) {
        std::string out;
        auto give_up_at = std::chrono::steady_clock::now() + limit;
        while (!done(out) && std::chrono::steady_clock::now() < give_up_at) {
            if (io.stopped()) io.restart();
            io.run_for(5ms);
            out += drain();
        }
        return out;
    }

    int read_end() const { return read_end_.get(); }

  private:
    UniqueFd saved_stderr_;
    UniqueFd read_end_;
};

// Should writing to stderr block after all, starts reading the pipe after `patience`,
// so that the test ends (and fails) rather than hangs.
class BlockedWriteRescue {
  public:
    BlockedWriteRescue(int read_end, std::chrono::milliseconds patience)
        : thread_([this, read_end, patience] {
              auto rescue_at = std::chrono::steady_clock::now() + patience;
              while (!stop_ && std::chrono::steady_clock::now() < rescue_at) {
                  std::this_thread::sleep_for(5ms);
              }
              char buffer[4096];
              while (!stop_) {
                  rescued_ = true;
                  pollfd readable{read_end, POLLIN, 0};
                  if (::poll(&readable, 1, 20) > 0) (void)::read(read_end, buffer, sizeof(buffer));
              }
          }) {}
    ~BlockedWriteRescue() { stop(); }
    BlockedWriteRescue(const BlockedWriteRescue&) = delete;
    BlockedWriteRescue& operator=(const BlockedWriteRescue&) = delete;

    // True when a write had blocked.
    bool stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        return rescued_;
    }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<bool> rescued_{false};
    std::thread thread_;
};

std::vector<std::string> split_lines(std::string_view text) {
    std::vector<std::string> lines;
    for (std::size_t start = 0; start < text.size();) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        lines.emplace_back(text.substr(start, end - start));
        start = end + 1;
    }
    return lines;
}

// "line 0000 xxx...", "line 0001 xxx...", ...: 100 bytes each.
std::vector<std::string> numbered_messages(int count) {
    std::vector<std::string> messages;
    for (int i = 0; i < count; ++i) {
        std::string number = std::to_string(i);
        number.insert(0, 4 - std::min<std::size_t>(4, number.size()), '0');
        messages.push_back("line " + number + " " + std::string(90, 'x'));
    }
    return messages;
}

// The message of a whole line as the log writes it ("<time> <level> <role>[<pid>] <message>"),
// or nullopt when `line` is not one.
std::optional<std::string> message_of(const std::string& line) {
    static const std::regex head(
        R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|warning) [^ \[]+\[\d+\] )");
    std::smatch match;
    if (!std::regex_search(line, match, head, std::regex_constants::match_continuous)) {
        return std::nullopt;
    }
    return match.suffix();
}

TEST_F(LogOutputOnAPipe, AStalledStderrNeverBlocksAndLosesOnlyWholeCountedLines) {
    std::vector<std::string> messages = numbered_messages(2000);
    ASSERT_GT(fill_pipe(), 0u);

    boost::asio::io_context io;
    LogOutput output(io, 16 * 1024);
    std::uint64_t dropped_before = dropped_line_count();
    BlockedWriteRescue rescue(read_end(), 3s);
    auto started = std::chrono::steady_clock::now();
    for (const std::string& message : messages) log::write(Level::info, message);
    auto took = std::chrono::steady_clock::now() - started;
    ASSERT_FALSE(rescue.stop()) << "logging blocked on a stderr that takes nothing";
    EXPECT_LT(took, 1s);

    std::uint64_t dropped = dropped_line_count() - dropped_before;
    EXPECT_GT(dropped, 0u) << "16 KiB cannot hold " << messages.size() << " lines";
    EXPECT_LT(dropped, messages.size()) << "nothing was kept for later";

    std::string filler = drain();
    EXPECT_EQ(filler.find_first_not_of('F'), std::string::npos)
        << "a line was written to a pipe that had no room";

    auto has_report = [](const std::string& read) {
        return read.find("lines dropped") != std::string::npos;
    };
    auto never = [](const std::string&) { return false; };
    std::string out = run_and_read(io, 5s, has_report);
    out += run_and_read(io, 50ms, never);  // and anything after the report
    ASSERT_TRUE(out.ends_with("\n")) << "the output ends in a cut line";

    std::size_t next = 0;  // the lines kept are the first ones, in order
    int reports = 0;
    for (const std::string& line : split_lines(out)) {
        std::optional<std::string> message = message_of(line);
        ASSERT_TRUE(message) << "not a whole line: " << line.substr(0, 200);
        if (message->find("log lines dropped") != std::string::npos) {
            ++reports;
            EXPECT_EQ(*message,
                      std::to_string(dropped) + " log lines dropped: stderr was not taking them");
            EXPECT_EQ(next + dropped, messages.size()) << "lines were lost without being counted";
            continue;
        }
        EXPECT_EQ(reports, 0) << "a line after the report";
        ASSERT_LT(next, messages.size());
        ASSERT_EQ(*message, messages[next]) << "line " << next << " cut, mixed or out of order";
        ++next;
    }
    EXPECT_GT(next, 0u) << "none of the lines kept came out";
    EXPECT_EQ(reports, 1) << "the drop was not reported once";
}

TEST_F(LogOutputOnAPipe, BufferedLinesStayWholeAmongAnotherWritersLines) {
    std::vector<std::string> messages = numbered_messages(3000);  // far more than the pipe holds
    ASSERT_GT(fill_pipe(), 0u);
    UniqueFd other_writer(::open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    ASSERT_TRUE(other_writer) << std::strerror(errno);

    boost::asio::io_context io;
    LogOutput output(io, 1024 * 1024);
    std::uint64_t dropped_before = dropped_line_count();
    for (const std::string& message : messages) log::write(Level::info, message);
    EXPECT_EQ(dropped_line_count(), dropped_before) << "1 MiB holds them all";
    drain();  // what fill_pipe wrote

    // Another process shares the pipe and writes between the loop's writes.
    const std::string other = "a line of another process\n";
    const std::string last = messages.back() + "\n";
    std::string out;
    auto give_up_at = std::chrono::steady_clock::now() + 10s;
    while (!out.ends_with(last) && std::chrono::steady_clock::now() < give_up_at) {
        (void)::write(other_writer.get(), other.data(), other.size());
        io.run_for(2ms);
        out += drain();
    }
    ASSERT_TRUE(out.ends_with(last)) << "not every line came out in time";

    std::size_t next = 0;
    int others = 0;
    for (const std::string& line : split_lines(out)) {
        if (line + "\n" == other) {
            ++others;
            continue;
        }
        std::optional<std::string> message = message_of(line);
        ASSERT_TRUE(message) << "a line cut by another's: " << line.substr(0, 200);
        ASSERT_LT(next, messages.size());
        ASSERT_EQ(*message, messages[next]) << "line " << next << " cut, mixed or out of order";
        ++next;
    }
    EXPECT_EQ(next, messages.size());
    EXPECT_GT(others, 1) << "the other writer never wrote between the loop's writes";
}

TEST_F(LogOutputOnAPipe, ALineLoggedOnAnotherThreadIsWrittenByTheLoop) {
    boost::asio::io_context io;
    LogOutput output(io, 16 * 1024);
    std::thread([] { log::write(Level::info, "from another thread"); }).join();
    EXPECT_EQ(drain(), "") << "written by the logging thread, not by the loop";

    std::string out = run_and_read(
        io, 2s, [](const std::string& read) { return read.find('\n') != std::string::npos; });
    EXPECT_TRUE(out.ends_with(" from another thread\n")) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

TEST_F(LogOutputOnAPipe, ALineLoggedOnTheLoopIsWrittenAtOnceWhenStderrTakesIt) {
    boost::asio::io_context io;
    LogOutput output(io, 16 * 1024);
    log::write(Level::info, "straight through");
    std::string out = drain();
    EXPECT_TRUE(out.ends_with(" straight through\n")) << out;
}

}  // namespace
}  // namespace prefork::log

// read_hang_report and HangReport on real processes of the test's own: the stack of a
// stopped thread, named, and the requests of its table, read out of its memory.

#include "hang_report.hpp"
#include "eventually.hpp"
#include "requests_in_flight.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <thread>

namespace prefork::master {
namespace {

using namespace std::chrono_literals;

// Each says it has started with a byte on `started`.
[[gnu::noinline]] void spin_forever(int started) {
    (void)!::write(started, "s", 1);
    volatile unsigned long turns = 0;
    for (;;) turns = turns + 1;
}

[[gnu::noinline]] void pause_forever(int started) {
    (void)!::write(started, "s", 1);
    for (;;) ::pause();
}

// A child process of the test, stuck in `hang` with the requests in flight that this
// process had when it forked (the same addresses in the child); killed at the end.
class StuckChild {
  public:
    explicit StuckChild(void (*hang)(int started)) {
        int started[2];
        if (::pipe(started) != 0) throw std::runtime_error("pipe failed");
        pid_ = ::fork();
        if (pid_ == 0) {
            // Where Yama's ptrace_scope is 1, the reading child of HangReport (this test's
            // child too, not our ancestor) may trace us only so.
            ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
            hang(started[1]);
            ::_exit(0);
        }
        char byte;
        (void)!::read(started[0], &byte, 1);  // it is in `hang` now
        ::close(started[0]);
        ::close(started[1]);
    }
    ~StuckChild() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    StuckChild(const StuckChild&) = delete;
    StuckChild& operator=(const StuckChild&) = delete;
    pid_t pid() const { return pid_; }

  private:
    pid_t pid_;
};

std::uint64_t table_address() {
    return reinterpret_cast<std::uintptr_t>(&requests_in_flight());
}

bool has_line(const std::vector<std::string>& lines, const std::string& part) {
    for (const auto& line : lines) {
        if (line.find(part) != std::string::npos) return true;
    }
    return false;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    return text;
}

// The state letter of /proc/PID/stat: 't' while ptrace holds it.
char state_of(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() ? '\0' : text[close + 2];
}

TEST(HangReport, NamesTheFunctionsOnTheStackOfABusyThreadAndLetsItGoOn) {
    StuckChild child(spin_forever);
    auto lines = read_hang_report(child.pid(), 0);
    EXPECT_TRUE(has_line(lines, "stack #0 ")) << joined(lines);
    EXPECT_TRUE(has_line(lines, "::spin_forever(int)+0x")) << joined(lines);
    EXPECT_TRUE(has_line(lines, " main+")) << joined(lines);
    EXPECT_FALSE(has_line(lines, "request in flight")) << "no table was given:\n" << joined(lines);
    // Detached: it runs again (a stopped thread would stay 't').
    EXPECT_TRUE(testing::eventually([&] { return state_of(child.pid()) == 'R'; }, 5s))
        << state_of(child.pid());
}

TEST(HangReport, ListsTheRequestsInFlightOldestFirst) {
    std::string get = "GET", post = "POST", first = "/first?x=1", second = "/second";
    std::optional<StuckChild> child;
    {
        InFlightEntry older, newer;
        older.begin(std::chrono::steady_clock::now() - 5s, get, first);
        newer.begin(std::chrono::steady_clock::now() - 2s, post, second);
        child.emplace(pause_forever);
    }  // gone from this process's table, still in the child's
    EXPECT_EQ(requests_in_flight().count, 0u);
    auto lines = read_hang_report(child->pid(), table_address());
    ASSERT_TRUE(has_line(lines, "::pause_forever(int)+0x")) << joined(lines);
    std::vector<std::string> requests;
    for (const auto& line : lines) {
        if (line.rfind("request in flight for ", 0) == 0) requests.push_back(line);
    }
    ASSERT_EQ(requests.size(), 2u) << joined(lines);
    EXPECT_NE(requests[0].find("s: GET /first?x=1"), std::string::npos) << joined(lines);
    EXPECT_NE(requests[1].find("s: POST /second"), std::string::npos) << joined(lines);
    double older_for = std::stod(requests[0].substr(22));
    EXPECT_GE(older_for, 5.0);
    EXPECT_LT(older_for, 60.0);
}

TEST(HangReport, SaysSoWhenNoRequestIsInFlight) {
    StuckChild child(pause_forever);
    auto lines = read_hang_report(child.pid(), table_address());
    EXPECT_TRUE(has_line(lines, "no request in flight")) << joined(lines);
}

TEST(HangReport, ATableOfAnotherLayoutIsNotRead) {
    static in_flight::Table other;
    other.version = in_flight::kVersion + 1;
    StuckChild child(pause_forever);
    auto lines = read_hang_report(child.pid(), reinterpret_cast<std::uintptr_t>(&other));
    EXPECT_TRUE(has_line(lines, "their table is of another version")) << joined(lines);
    EXPECT_TRUE(has_line(lines, "pause_forever")) << "the stack is read all the same:\n"
                                                  << joined(lines);
}

TEST(HangReport, AProcessThatIsGoneGivesOneLineSayingWhy) {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    ::waitpid(pid, nullptr, 0);
    auto lines = read_hang_report(pid, 0);
    ASSERT_EQ(lines.size(), 1u) << joined(lines);
    EXPECT_NE(lines[0].find("cannot read its stack: ptrace(PTRACE_SEIZE): No such process"),
              std::string::npos)
        << lines[0];
}

TEST(HangReport, AWorkerADebuggerHoldsAlreadyIsNamedAsSuch) {
    StuckChild child(pause_forever);
    ASSERT_EQ(::ptrace(PTRACE_SEIZE, child.pid(), nullptr, nullptr), 0) << std::strerror(errno);
    auto lines = read_hang_report(child.pid(), 0);
    ASSERT_EQ(lines.size(), 1u) << joined(lines);
    EXPECT_NE(lines[0].find("(process " + std::to_string(::getpid()) + " traces it already)"),
              std::string::npos)
        << lines[0];
}

// The master's way: in a forked child, the lines back on the loop.
TEST(HangReport, IsReadInAChildAndHandedToTheLoop) {
    StuckChild child(spin_forever);
    boost::asio::io_context io;
    std::optional<std::vector<std::string>> report;
    HangReport reading(io, child.pid(), table_address(), 5s,
                       [&](std::vector<std::string> lines) { report = std::move(lines); });
    io.run_for(20s);
    ASSERT_TRUE(report.has_value());
    EXPECT_TRUE(has_line(*report, "::spin_forever(int)+0x")) << joined(*report);
    EXPECT_TRUE(has_line(*report, "no request in flight")) << joined(*report);
    // The reading child is this process's to reap.
    int status = 0;
    pid_t reaped = 0;
    for (int i = 0; i < 100 && reaped == 0; ++i) {
        reaped = ::waitpid(-1, &status, WNOHANG);
        if (reaped == 0) std::this_thread::sleep_for(50ms);
    }
    EXPECT_GT(reaped, 0);
    EXPECT_NE(reaped, child.pid());
}

TEST(HangReport, DestroyedBeforeItsReportCameItCallsNothingAndEndsItsChild) {
    StuckChild child(spin_forever);
    boost::asio::io_context io;
    bool called = false;
    {
        HangReport reading(io, child.pid(), table_address(), 5s,
                           [&](std::vector<std::string>) { called = true; });
        io.poll();
    }
    io.run_for(1s);
    EXPECT_FALSE(called);
    // Its child is killed: reaped within the limit, not after the 5 s of its alarm.
    int status = 0;
    pid_t reaped = 0;
    for (int i = 0; i < 40 && reaped <= 0; ++i) {
        reaped = ::waitpid(-1, &status, WNOHANG);
        if (reaped == 0) std::this_thread::sleep_for(50ms);
    }
    ASSERT_GT(reaped, 0);
    EXPECT_NE(reaped, child.pid());
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    // And the worker it was reading runs on.
    EXPECT_TRUE(testing::eventually([&] { return state_of(child.pid()) == 'R'; }, 5s))
        << state_of(child.pid());
}

}  // namespace
}  // namespace prefork::master

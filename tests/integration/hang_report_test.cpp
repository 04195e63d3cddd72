// Hang forensics: before a worker that stopped heartbeating is killed, the log says where
// its event loop is stuck (a symbolized stack) and which requests it had in flight.

#include "http_client.hpp"
#include "prefork_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

namespace prefork::testing {
namespace {

using namespace std::chrono_literals;

// What the log said of a hung worker before its SIGABRT.
struct HangLog {
    std::vector<std::string> stack;     // "stack #0 ..." lines, innermost first
    std::vector<std::string> requests;  // "request in flight for 2.31s: GET /spin" lines
    std::string output;                 // the whole log, for failure messages
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Hangs the only worker with `target` while a request waits on a timer in the same
// worker, and reads what the log says of it up to its SIGABRT.
HangLog hang_the_worker(const std::string& target) {
    PreforkServer server(Loopback{1, {"--timeout", "2", "--admin", "127.0.0.1:0"}});
    HttpConnection waiting(server.port(), 30s);
    std::string pid = waiting.get("/pid").body();
    waiting.send_raw("GET /sleep?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(server.wait_for_requests_received(2));
    HttpConnection hung(server.port(), 30s);
    hung.send_raw("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");

    std::string worker = "worker " + pid + " (generation 1) ";
    auto killed = server.wait_for_lines(worker + "silent for", 1, 20s);
    EXPECT_EQ(killed.size(), 1u) << server.output();
    EXPECT_EQ(server.wait_for_lines(worker + "killed by SIGABRT", 1, 10s).size(), 1u)
        << server.output();
    EXPECT_EQ(server.wait_for_lines(" ready (generation 1)", 2, 10s).size(), 2u)
        << "not replaced:\n"
        << server.output();

    HangLog log;
    log.output = server.output();
    for (const auto& line : lines_of(log.output)) {
        if (line.find(worker + "silent for") != std::string::npos) break;  // the kill
        auto at = line.find(worker + "hung: ");
        if (at == std::string::npos) continue;
        std::string said = line.substr(at + worker.size() + 6);
        if (said.rfind("stack #", 0) == 0) log.stack.push_back(said);
        if (said.rfind("request in flight for ", 0) == 0) log.requests.push_back(said);
    }
    return log;
}

// The index of the first frame naming `function`, or -1.
int frame_of(const HangLog& log, const std::string& function) {
    for (std::size_t i = 0; i < log.stack.size(); ++i) {
        if (log.stack[i].find(function) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
}

bool ends_with(const std::string& text, const std::string& end) {
    return text.size() >= end.size() &&
           text.compare(text.size() - end.size(), end.size(), end) == 0;
}

// The seconds of a request line that ends with `request`, or -1 when there is none.
double age_of(const HangLog& log, const std::string& request) {
    for (const auto& line : log.requests) {
        if (ends_with(line, ": " + request)) {
            return std::stod(line.substr(std::string("request in flight for ").size()));
        }
    }
    return -1;
}

// Both requests are listed, the hung one for about as long as the worker was silent.
void expect_requests_in_flight(const HangLog& log, const std::string& hung) {
    ASSERT_EQ(log.requests.size(), 2u) << log.output;
    double hung_for = age_of(log, "GET " + hung);
    double sleeping_for = age_of(log, "GET /sleep?ms=60000");
    // Silence counts from the last heartbeat (at most 1 s before the request came).
    EXPECT_GE(hung_for, 1.0) << log.output;
    EXPECT_GT(sleeping_for, hung_for) << log.output;
    EXPECT_TRUE(ends_with(log.requests[0], ": GET /sleep?ms=60000")) << "the oldest first:\n"
                                                                     << log.output;
}

// The handler's own frame (a lambda in the demo's main), below the hang's function.
void expect_handler_frame_below(const HangLog& log, int hang_frame) {
    int handler = frame_of(log, "main::{lambda(prefork::Request const&)");
    EXPECT_GT(handler, hang_frame) << log.output;
    EXPECT_GT(frame_of(log, "prefork::Connection::"), handler) << log.output;
}

// Hangs the worker with `target` and checks the report: `function` (the demo's, where it
// hangs) on the stack with the handler below it; `call`, when given, above it (the system
// call it is in); both requests in flight.
void expect_hang_reported(const std::string& target, const std::string& function,
                          const std::string& call = "") {
    HangLog log = hang_the_worker(target);
    int hang = frame_of(log, "(anonymous namespace)::" + function);
    ASSERT_GE(hang, 0) << log.output;
    if (!call.empty()) {
        int in = frame_of(log, call);
        EXPECT_GE(in, 0) << log.output;
        EXPECT_LT(in, hang) << "the system call is not above the function that made it:\n"
                            << log.output;
    }
    expect_handler_frame_below(log, hang);
    expect_requests_in_flight(log, target);
}

TEST(HangReport, AWorkerAsleepInBlockIsReportedWithItsStackAndRequests) {
    expect_hang_reported("/block?ms=60000", "block_for(long long)", "nanosleep");
}

TEST(HangReport, AWorkerInABusyLoopIsReportedWithItsStackAndRequests) {
    expect_hang_reported("/spin?ms=60000", "spin_for(long long)");
}

TEST(HangReport, AWorkerBlockedInASystemCallIsReportedWithItsStackAndRequests) {
    expect_hang_reported("/recv?ms=60000", "wait_in_recv(long long)", "recv");
}

}  // namespace
}  // namespace prefork::testing

#pragma once

#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace prefork::master {

// What a hung worker was doing, in lines for the log: the stack of its event-loop thread
// (the process's main thread), symbolized with elfutils' libdw from the binaries' symbol
// tables (and their DWARF line tables when they have them), and the requests it had in
// flight, read out of its memory at `requests_in_flight` (the address of its
// in_flight::Table, from its Ready message; 0: none). The thread is held stopped with
// ptrace meanwhile, so nothing runs in the worker, whatever state it is in; it goes on
// when the report is read. Blocks, at worst for as long as the thread takes to stop: the
// master calls it in a child process (HangReport).
std::vector<std::string> read_hang_report(pid_t pid, std::uint64_t requests_in_flight);

// Reads a worker's hang report in a child process of the master (forked: ptrace may
// block, and a worker in an uninterruptible sleep must not hold the master's loop) and
// hands its lines to `done` on the master's loop, after at most `limit` (the lines read
// by then, and one saying the rest did not come). Destroying it first drops the report
// and kills the child.
class HangReport {
  public:
    using Done = std::function<void(std::vector<std::string> lines)>;

    HangReport(boost::asio::io_context& io, pid_t worker, std::uint64_t requests_in_flight,
               std::chrono::milliseconds limit, Done done);
    ~HangReport();
    HangReport(const HangReport&) = delete;
    HangReport& operator=(const HangReport&) = delete;

  private:
    void do_read();
    void finish(std::vector<std::string> lines);
    void end_child();

    UniqueFd child_;  // a pidfd: the reading child, killed once it is not needed
    boost::asio::posix::stream_descriptor pipe_;
    boost::asio::steady_timer deadline_;
    std::string text_;
    char buffer_[4096];
    Done done_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for completions after us
};

}  // namespace prefork::master

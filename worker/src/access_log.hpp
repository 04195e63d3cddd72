#pragma once

#include <prefork/common/unique_fd.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace prefork {

// One line per request, written with a single write() so that the lines of all workers
// sharing a file never interleave. In the log's format (text or JSON).
class AccessLog {
  public:
    // `target`: "-" for stderr, a path to append to, "" or "off" for none.
    explicit AccessLog(std::string target);

    bool enabled() const { return enabled_; }
    void write(std::string_view client, std::string_view method, std::string_view target,
               unsigned status, std::uint64_t bytes, std::chrono::steady_clock::duration duration);
    // Opens the path again (after a log rotation moved the file away).
    void reopen();

  private:
    std::string path_;
    bool enabled_ = false;
    UniqueFd file_;  // invalid: stderr
};

}  // namespace prefork

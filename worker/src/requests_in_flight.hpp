#pragma once

#include <prefork/common/requests_in_flight.hpp>

#include <chrono>
#include <string_view>

namespace prefork {

// A connection's entry in the worker's table of requests in flight, which the master reads
// out of a hung worker (common/include/prefork/common/requests_in_flight.hpp). Touched by
// the event loop only; in the table from begin() to end(), or to its destruction.
class InFlightEntry {
  public:
    InFlightEntry() = default;
    InFlightEntry(const InFlightEntry&) = delete;
    InFlightEntry& operator=(const InFlightEntry&) = delete;
    ~InFlightEntry() { end(); }

    // `method` and `target` must stay put until end(): constants, or the connection's own strings.
    void begin(std::chrono::steady_clock::time_point started, std::string_view method,
               std::string_view target);
    void end();

  private:
    in_flight::Record record_;
    bool listed_ = false;
};

// The worker's table, for its Ready message.
const in_flight::Table& requests_in_flight();

}  // namespace prefork

#pragma once

// Keep-alive clients that send a request now and then, as a connection pool in front of a
// service does: the traffic that finds out whether a reload closes idle connections under
// a client's feet (a saturating load never leaves a connection idle).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace prefork::testing {

// `connections` clients on 127.0.0.1:port, each on one keep-alive connection of its own: it
// pauses a random time, then sends GET / (expecting "Hello, World!") or POST /echo with a
// body of random bytes (expecting them back), and never retries. A request without its
// whole expected answer is a failure. A connection that the server ends (an end of stream
// or a reset, whether idle or during a request, or a response saying Connection: close) is
// counted as closed by the server, and the client connects again. Stops by itself after
// `duration`.
class SporadicClients {
  public:
    struct Options {
        int connections = 100;
        std::chrono::milliseconds min_pause{200};
        std::chrono::milliseconds max_pause{1500};
        std::chrono::milliseconds duration{10'000};
    };
    struct Result {
        std::uint64_t requests = 0;  // sent
        std::uint64_t failed = 0;
        std::uint64_t closed_by_server = 0;
        std::vector<std::string> errors;  // the first few
    };

    SporadicClients(std::uint16_t port, Options options);
    ~SporadicClients();
    SporadicClients(const SporadicClients&) = delete;
    SporadicClients& operator=(const SporadicClients&) = delete;

    std::uint64_t requests() const { return requests_.load(); }
    // Waits until every client has stopped (after `duration`), and returns what they saw.
    Result wait();

  private:
    void run_client(unsigned seed);
    void record(const std::string& what, bool failed, bool closed);

    std::uint16_t port_;
    Options options_;
    std::chrono::steady_clock::time_point deadline_;
    std::atomic<std::uint64_t> requests_{0}, failed_{0}, closed_{0};
    std::mutex errors_mutex_;
    std::vector<std::string> errors_;
    std::vector<std::thread> threads_;
};

}  // namespace prefork::testing

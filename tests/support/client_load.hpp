#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace prefork::testing {

// Bounded client load on 127.0.0.1 for tests: some clients keep one connection alive
// (and open a new one only when the server says Connection: close, as HTTP asks), others
// open a new connection per request. Every response must be 200 with `expected_body`;
// anything else, a reset or an empty reply included, is a failure. Stops by itself after
// `max_duration` or `max_requests_per_client`.
class ClientLoad {
  public:
    struct Result {
        std::uint64_t ok = 0;
        std::uint64_t failed = 0;
        std::vector<std::string> errors;  // the first few
    };

    ClientLoad(std::uint16_t port, std::string target, std::string expected_body,
               int keep_alive_clients, int new_connection_clients,
               std::chrono::milliseconds max_duration = std::chrono::seconds(30),
               int max_requests_per_client = 100'000);
    ~ClientLoad();

    std::uint64_t ok() const { return ok_.load(); }
    // Stops the clients now and returns what they saw.
    Result stop();
    // Lets the clients finish their requests (or reach max_duration), then returns.
    Result wait();

  private:
    void run_client(bool keep_alive);
    void record_failure(const std::string& what);

    std::uint16_t port_;
    std::string target_, expected_body_;
    std::chrono::steady_clock::time_point deadline_;
    int max_requests_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> ok_{0}, failed_{0};
    std::mutex errors_mutex_;
    std::vector<std::string> errors_;
    std::vector<std::thread> threads_;
};

}  // namespace prefork::testing

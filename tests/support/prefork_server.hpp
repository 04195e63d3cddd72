// PreforkServer: the prefork master under test, started and ready (Loopback: on 127.0.0.1
// with N workers); the paths of the binaries under test.
#pragma once

#include "child_process.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefork::testing {

// The paths of the binaries under test (set by CMake).
std::string prefork_binary();
std::string demo_binary();
std::string crash_worker_binary();
std::string preforkctl_binary();
// prefork built as another version (VERSION-next): what the upgrade tests put in its place.
std::string prefork_next_binary();
// prefork-next, a second slow to start (not to answer --check).
std::string slow_start_binary();

// How most tests start the master: `prefork --bind 127.0.0.1:0 --workers N ARGS...`, with
// NAME=VALUE settings added to its environment. The port is the kernel's choice, so tests
// run side by side.
struct Loopback {
    int workers = 2;
    std::vector<std::string> args = {};  // after --bind and --workers, so they can add binds
    std::vector<std::string> env = {};
    std::string binary = {};  // the prefork to start; empty: the build's
};

// The prefork master with the demo as its worker command.
class PreforkServer : public ChildProcess {
  public:
    // Starts `prefork --bind 127.0.0.1:0 --workers N ARGS -- prefork-demo` and waits until
    // its N workers are ready.
    explicit PreforkServer(Loopback server);
    // Starts `PREFIX... prefork --bind 127.0.0.1:0 ...` (PREFIX: e.g. unshare and its options).
    PreforkServer(std::vector<std::string> prefix, Loopback server);
    // Starts `prefork ARGS -- prefork-demo` (binds other than Loopback's) and waits until
    // `workers` workers are ready.
    PreforkServer(std::vector<std::string> args, int workers,
                  std::vector<std::string> extra_env = {});
    // Starts `prefork --bind 127.0.0.1:0 ... -- WORKER_COMMAND...` (a test's own worker).
    static std::unique_ptr<PreforkServer> with_worker(Loopback server,
                                                      std::vector<std::string> worker_command);
    // Starts `prefork --bind 127.0.0.1:0 ... -- prefork-demo` with its output through a pipe
    // (ThroughPipe).
    static std::unique_ptr<PreforkServer> with_output_pipe(Loopback server);
    // Starts `prefork --config FILE`: the worker command is the file's.
    static std::unique_ptr<PreforkServer> from_config(const std::string& config_path, int workers);

    // The port of the n-th TCP listener, as the master reported it.
    std::uint16_t port(std::size_t n = 0) const;

    // Re-reads the ports the master reported (after a reload bound new ones).
    std::vector<std::uint16_t> ports() const;
    // The port of the admin endpoint (--admin 127.0.0.1:0), as the master reported it.
    std::uint16_t admin_port() const;
    // Waits until the workers have received `count` requests in all, as the admin endpoint
    // reports them: a request sent without waiting for its answer is in its handler. (A
    // worker reports its first request at once, the later ones within a second.)
    bool wait_for_requests_received(std::uint64_t count,
                                    std::chrono::milliseconds timeout = 10s) const;

  private:
    struct FromArgv {};
    PreforkServer(FromArgv, std::vector<std::string> argv, int workers,
                  std::vector<std::string> extra_env = {});
    PreforkServer(ThroughPipe pipe, std::vector<std::string> argv, int workers,
                  std::vector<std::string> extra_env);
    void wait_until_ready(int workers);

    std::vector<std::uint16_t> ports_;
};

}  // namespace prefork::testing

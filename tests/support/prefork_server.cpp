// PreforkServer: the prefork master under test, started and ready; the binaries' paths.
#include "prefork_server.hpp"

#include "eventually.hpp"
#include "http_client.hpp"

#include <boost/json.hpp>

#include <stdexcept>

namespace prefork::testing {

std::string prefork_binary() {
    return PREFORK_BINARY;
}
std::string demo_binary() {
    return PREFORK_DEMO_BINARY;
}
std::string crash_worker_binary() {
    return PREFORK_CRASH_WORKER_BINARY;
}
std::string preforkctl_binary() {
    return PREFORKCTL_BINARY;
}
std::string prefork_next_binary() {
    return PREFORK_NEXT_BINARY;
}
std::string slow_start_binary() {
    return PREFORK_SLOW_START_BINARY;
}

namespace {

// `PREFIX... prefork ARGS -- WORKER_COMMAND...`
std::vector<std::string> prefork_command(std::vector<std::string> prefix,
                                         const std::vector<std::string>& args,
                                         const std::vector<std::string>& worker_command,
                                         const std::string& binary = {}) {
    prefix.push_back(binary.empty() ? prefork_binary() : binary);
    prefix.insert(prefix.end(), args.begin(), args.end());
    prefix.push_back("--");
    prefix.insert(prefix.end(), worker_command.begin(), worker_command.end());
    return prefix;
}

std::vector<std::string> loopback_args(const Loopback& server) {
    std::vector<std::string> args = {"--bind", "127.0.0.1:0", "--workers",
                                     std::to_string(server.workers)};
    args.insert(args.end(), server.args.begin(), server.args.end());
    return args;
}

}  // namespace

PreforkServer::PreforkServer(Loopback server)
    : PreforkServer(FromArgv{},
                    prefork_command({}, loopback_args(server), {demo_binary()}, server.binary),
                    server.workers, std::move(server.env)) {}

PreforkServer::PreforkServer(std::vector<std::string> prefix, Loopback server)
    : PreforkServer(
          FromArgv{},
          prefork_command(std::move(prefix), loopback_args(server), {demo_binary()}, server.binary),
          server.workers, std::move(server.env)) {}

PreforkServer::PreforkServer(std::vector<std::string> args, int workers,
                             std::vector<std::string> extra_env)
    : PreforkServer(FromArgv{}, prefork_command({}, args, {demo_binary()}), workers,
                    std::move(extra_env)) {}

PreforkServer::PreforkServer(FromArgv, std::vector<std::string> argv, int workers,
                             std::vector<std::string> extra_env)
    : ChildProcess(std::move(argv), std::move(extra_env)) {
    wait_until_ready(workers);
}

std::unique_ptr<PreforkServer> PreforkServer::with_worker(Loopback server,
                                                          std::vector<std::string> worker_command) {
    return std::unique_ptr<PreforkServer>(new PreforkServer(
        FromArgv{}, prefork_command({}, loopback_args(server), worker_command, server.binary),
        server.workers, std::move(server.env)));
}

PreforkServer::PreforkServer(ThroughPipe pipe, std::vector<std::string> argv, int workers,
                             std::vector<std::string> extra_env)
    : ChildProcess(pipe, std::move(argv), std::move(extra_env)) {
    wait_until_ready(workers);
}

std::unique_ptr<PreforkServer> PreforkServer::with_output_pipe(Loopback server) {
    return std::unique_ptr<PreforkServer>(new PreforkServer(
        ThroughPipe{}, prefork_command({}, loopback_args(server), {demo_binary()}, server.binary),
        server.workers, std::move(server.env)));
}

std::unique_ptr<PreforkServer> PreforkServer::from_config(const std::string& config_path,
                                                          int workers) {
    return std::unique_ptr<PreforkServer>(
        new PreforkServer(FromArgv{}, {prefork_binary(), "--config", config_path}, workers));
}

std::vector<std::uint16_t> PreforkServer::ports() const {
    std::vector<std::uint16_t> ports;
    for (const std::string& line : wait_for_lines("listening on ", 0, 0ms)) {
        auto start = line.find("listening on ") + 13;
        auto end = line.find(' ', start);
        std::string address = line.substr(start, end - start);
        if (address.starts_with("unix:")) continue;
        ports.push_back(
            static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    }
    return ports;
}

std::uint16_t PreforkServer::admin_port() const {
    auto lines = wait_for_lines("admin endpoint on 127.0.0.1:", 1, 0ms);
    if (lines.empty()) throw std::runtime_error("no admin endpoint in the log:\n" + output());
    const std::string& line = lines[0];
    auto start = line.find("127.0.0.1:") + 10;
    return static_cast<std::uint16_t>(std::stoi(line.substr(start, line.find(' ', start) - start)));
}

bool PreforkServer::wait_for_requests_received(std::uint64_t count,
                                               std::chrono::milliseconds timeout) const {
    std::uint16_t admin = admin_port();
    return eventually(
        [&] {
            try {
                auto status = boost::json::parse(HttpConnection(admin).get("/status.json").body());
                std::uint64_t received = 0;
                for (const auto& worker : status.at("workers").as_array()) {
                    received += worker.at("requests").to_number<std::uint64_t>();
                }
                return received >= count;
            } catch (const std::exception&) {
                return false;
            }
        },
        timeout);
}

void PreforkServer::wait_until_ready(int workers) {
    auto lines = wait_for_lines(" ready (generation", static_cast<std::size_t>(workers));
    if (lines.size() < static_cast<std::size_t>(workers)) {
        throw std::runtime_error("prefork did not get " + std::to_string(workers) +
                                 " workers ready; its log:\n" + output());
    }
    for (const std::string& line : wait_for_lines("listening on ", 1)) {
        auto start = line.find("listening on ") + 13;
        auto end = line.find(' ', start);
        std::string address = line.substr(start, end - start);
        if (address.starts_with("unix:")) continue;
        ports_.push_back(
            static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    }
}

std::uint16_t PreforkServer::port(std::size_t n) const {
    if (n >= ports_.size()) throw std::runtime_error("no TCP listener #" + std::to_string(n));
    return ports_[n];
}

}  // namespace prefork::testing

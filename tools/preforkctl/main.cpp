// preforkctl: steer a running prefork through its admin endpoint (--admin).
//
//   preforkctl [--admin ADDR] status | reload | upgrade [--keep-workers] | stop | scale N | health

#include <prefork/common/listen_address.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>

#include <sys/socket.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

constexpr int kExitFailure = 1;  // not reachable, not ready, refused
constexpr int kExitUsage = 2;

const char* kUsage = R"(usage: preforkctl [--admin ADDR] COMMAND

Talks to a running prefork's admin endpoint (prefork --admin ADDR). ADDR is HOST:PORT,
[V6]:PORT or unix:PATH; without --admin, PREFORK_ADMIN is used.

commands:
  status     the master and one row per worker
  reload     the same as kill -HUP: new configuration, new workers, no request fails
  upgrade    the same as kill -USR2: the master re-executes its binary in place (same pid,
             same sockets, counters kept), then replaces the workers as a reload does;
             --keep-workers: the master alone
  stop       the same as kill -TERM: graceful stop
  scale N    keep N workers from now on
  health     exit status 0 when prefork is ready to serve, 1 otherwise (for HEALTHCHECK)
)";

struct Reply {
    unsigned status = 0;
    std::string body;
};

class AdminUnreachable : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

Reply call(const prefork::ListenAddress& address, http::verb method, const std::string& target) {
    asio::io_context io;
    asio::generic::stream_protocol::socket socket(io);
    try {
        if (address.kind == prefork::ListenAddress::Kind::unix_socket) {
            asio::local::stream_protocol::socket local(io);
            local.connect(asio::local::stream_protocol::endpoint(address.path));
            socket = asio::generic::stream_protocol::socket(std::move(local));
        } else {
            asio::ip::tcp::resolver resolver(io);
            asio::ip::tcp::socket tcp(io);
            asio::connect(tcp, resolver.resolve(address.host, std::to_string(address.port)));
            socket = asio::generic::stream_protocol::socket(std::move(tcp));
        }
    } catch (const boost::system::system_error& error) {
        throw AdminUnreachable("cannot reach prefork's admin endpoint at " + address.to_string() +
                               ": " + error.code().message() +
                               " (is prefork running with --admin " + address.to_string() + "?)");
    }
    timeval timeout{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    try {
        http::request<http::string_body> request{method, target, 11};
        request.set(http::field::host, "prefork");
        request.set(http::field::user_agent, "preforkctl");
        request.prepare_payload();
        http::write(socket, request);
        boost::beast::flat_buffer buffer;
        http::response<http::string_body> response;
        http::read(socket, buffer, response);
        return {response.result_int(), response.body()};
    } catch (const boost::system::system_error& error) {
        throw AdminUnreachable("no answer from prefork's admin endpoint at " + address.to_string() +
                               ": " + error.code().message());
    }
}

std::string seconds(double s) {
    char text[32];
    if (s >= 3600) {
        std::snprintf(text, sizeof(text), "%.0fh%02.0fm", s / 3600, std::fmod(s, 3600) / 60);
    } else if (s >= 60) {
        std::snprintf(text, sizeof(text), "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
    } else {
        std::snprintf(text, sizeof(text), "%.1fs", s);
    }
    return text;
}

std::uint64_t count(const json::value& v) {
    return v.to_number<std::uint64_t>();
}

int print_status(const std::string& body) {
    json::value root = json::parse(body);
    const json::object& r = root.as_object();
    const json::object& totals = r.at("totals").as_object();
    const json::object& exits = r.at("worker_exits").as_object();
    auto exits_of = [&](const char* cause) {
        return exits.contains(cause) ? count(exits.at(cause)) : 0;
    };
    std::printf("prefork %s, master %lld, %s, %s, generation %lld, up %s\n",
                r.at("version").as_string().c_str(), r.at("master_pid").to_number<long long>(),
                r.at("phase").as_string().c_str(), r.at("ready").as_bool() ? "ready" : "NOT READY",
                r.at("generation").to_number<long long>(),
                seconds(r.at("uptime_seconds").to_number<double>()).c_str());
    std::printf(
        "workers %zu/%lld, requests %llu, open connections %llu, reloads %llu, crashes %llu, hangs "
        "%llu\n\n",
        r.at("workers").as_array().size(), r.at("target_workers").to_number<long long>(),
        static_cast<unsigned long long>(count(totals.at("requests"))),
        static_cast<unsigned long long>(count(totals.at("active_connections"))),
        static_cast<unsigned long long>(count(r.at("reloads"))),
        static_cast<unsigned long long>(exits_of("crash")),
        static_cast<unsigned long long>(exits_of("hang")));
    if (const json::value* upgrade = r.if_contains("upgrade"); upgrade && upgrade->is_object()) {
        const json::object& u = upgrade->as_object();
        std::printf("binary %s, ", u.at("binary_path").as_string().c_str());
        if (u.at("last").is_string()) {
            std::printf("upgraded %s from %s (%llu upgrades)", u.at("last").as_string().c_str(),
                        u.at("from_version").as_string().c_str(),
                        static_cast<unsigned long long>(count(u.at("upgrades"))));
        } else {
            std::printf("never upgraded");
        }
        std::printf(", %llu refused\n\n", static_cast<unsigned long long>(count(u.at("failures"))));
    }
    std::printf("%-8s %4s  %-18s %9s %10s %6s %9s %10s\n", "PID", "GEN", "STATE", "UPTIME",
                "REQUESTS", "CONNS", "RSS", "HEARTBEAT");
    for (const json::value& row : r.at("workers").as_array()) {
        const json::object& w = row.as_object();
        std::string state(w.at("state").as_string());
        if (w.at("retiring").as_bool()) state += " (retiring)";
        char rss[32];
        std::snprintf(rss, sizeof(rss), "%.1fMiB", count(w.at("rss_bytes")) / 1048576.0);
        std::printf("%-8lld %4lld  %-18s %9s %10llu %6llu %9s %9s\n",
                    w.at("pid").to_number<long long>(), w.at("generation").to_number<long long>(),
                    state.c_str(), seconds(w.at("uptime_seconds").to_number<double>()).c_str(),
                    static_cast<unsigned long long>(count(w.at("requests"))),
                    static_cast<unsigned long long>(count(w.at("active_connections"))), rss,
                    (seconds(w.at("heartbeat_age_seconds").to_number<double>()) + " ago").c_str());
    }
    return 0;
}

int usage_error(const std::string& message) {
    std::cerr << "preforkctl: " << message << "\n" << kUsage;
    return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
    std::string admin = std::getenv("PREFORK_ADMIN") ? std::getenv("PREFORK_ADMIN") : "";
    std::vector<std::string> words;
    bool keep_workers = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            return 0;
        }
        if (arg == "--admin" && i + 1 < argc) {
            admin = argv[++i];
        } else if (arg.starts_with("--admin=")) {
            admin = arg.substr(8);
        } else if (arg == "--keep-workers") {
            keep_workers = true;
        } else if (arg.starts_with("-")) {
            return usage_error("unknown option " + arg);
        } else {
            words.push_back(arg);
        }
    }
    if (words.empty()) return usage_error("no command given");
    if (admin.empty())
        return usage_error("no admin address: give --admin ADDR or set PREFORK_ADMIN");
    prefork::ListenAddress address;
    try {
        address = prefork::parse_listen_address(admin);
    } catch (const prefork::AddressError& error) {
        return usage_error(error.what());
    }

    const std::string& command = words[0];
    if (keep_workers && command != "upgrade") return usage_error("--keep-workers is for upgrade");
    auto expect_words = [&](std::size_t n) { return words.size() == n; };
    try {
        if (command == "status" && expect_words(1)) {
            Reply reply = call(address, http::verb::get, "/status.json");
            if (reply.status != 200)
                throw AdminUnreachable("status: HTTP " + std::to_string(reply.status));
            return print_status(reply.body);
        }
        if (command == "health" && expect_words(1)) {
            Reply reply = call(address, http::verb::get, "/readyz");
            std::cout << (reply.status == 200 ? "ready" : "not ready") << "\n";
            return reply.status == 200 ? 0 : kExitFailure;
        }
        if ((command == "reload" || command == "stop") && expect_words(1)) {
            Reply reply = call(address, http::verb::post, "/" + command);
            std::cout << reply.body;
            return reply.status == 202 ? 0 : kExitFailure;
        }
        if (command == "upgrade" && expect_words(1)) {
            Reply reply = call(address, http::verb::post,
                               keep_workers ? "/upgrade?workers=keep" : "/upgrade");
            std::cout << reply.body;
            return reply.status == 202 ? 0 : kExitFailure;
        }
        if (command == "scale" && expect_words(2)) {
            Reply reply = call(address, http::verb::post, "/scale?workers=" + words[1]);
            std::cout << reply.body;
            return reply.status == 200 ? 0 : kExitFailure;
        }
    } catch (const AdminUnreachable& error) {
        std::cerr << "preforkctl: " << error.what() << "\n";
        return kExitFailure;
    } catch (const std::exception& error) {
        std::cerr << "preforkctl: unexpected answer from prefork: " << error.what() << "\n";
        return kExitFailure;
    }
    return usage_error("unknown command or wrong arguments: " + command);
}

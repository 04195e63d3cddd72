// Deployment: the container image's entrypoint as PID 1, systemd's notifications and
// socket activation, and --shutdown-delay for load balancers.

#include "child_process.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <future>

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// --- the container image ----------------------------------------------------------------

// ENTRYPOINT, CMD, ENV and HEALTHCHECK of the Dockerfile's last stage.
struct ImageContract {
    std::vector<std::string> entrypoint, cmd, healthcheck;
    std::map<std::string, std::string> env;
    std::string user;
};

std::vector<std::string> json_words(const std::string& text) {
    std::vector<std::string> words;
    json::value parsed = json::parse(text);  // outlives the loop over its array
    for (const auto& word : parsed.as_array()) words.emplace_back(word.as_string());
    return words;
}

ImageContract read_dockerfile(const std::string& path) {
    ImageContract image;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("FROM ")) image = ImageContract{};  // the last stage counts
        if (line.starts_with("ENTRYPOINT ")) image.entrypoint = json_words(line.substr(11));
        if (line.starts_with("CMD ")) image.cmd = json_words(line.substr(4));
        if (line.starts_with("USER ")) image.user = line.substr(5);
        if (line.starts_with("HEALTHCHECK "))
            image.healthcheck = json_words(line.substr(line.find(" CMD ") + 5));
        if (line.starts_with("ENV ")) {
            auto equals = line.find('=');
            image.env[line.substr(4, equals - 4)] = line.substr(equals + 1);
        }
    }
    return image;
}

// The image's paths are the install prefix's bin/; here, the built binaries. Its fixed
// ports become ports the kernel chooses on loopback: tests never take a fixed port.
// The image's binaries, copied where any user can run them (the checkout may live under a
// directory that others cannot enter, such as root's home), removed at the end.
class InstalledBinaries {
  public:
    InstalledBinaries() {
        for (const auto& [name, from] :
             {std::pair<std::string, std::string>{"prefork", prefork_binary()},
              {"prefork-demo", demo_binary()},
              {"preforkctl", preforkctl_binary()}}) {
            fs::copy_file(from, dir_ / name);
            fs::permissions(dir_ / name, fs::perms::owner_all | fs::perms::group_read |
                                             fs::perms::group_exec | fs::perms::others_read |
                                             fs::perms::others_exec);
        }
    }
    // A word of the image's command line, as it runs here.
    std::string map(const std::string& word) const {
        if (word == "/usr/local/bin/prefork") return dir_ / "prefork";
        if (word == "/usr/local/bin/prefork-demo") return dir_ / "prefork-demo";
        if (word == "preforkctl") return dir_ / "preforkctl";
        if (word.ends_with(":8080") || word.ends_with(":9000")) return "127.0.0.1:0";
        return word;
    }

  private:
    TempDir dir_in_tmp_{"prefork-image", /*open_to_everyone=*/true};
    fs::path dir_{dir_in_tmp_.path()};
};

TEST(Container, ImageEntrypointRunsAsPid1AsANonRootUser) {
    ImageContract image = read_dockerfile(std::string(PREFORK_SOURCE_DIR) + "/Dockerfile");
    ASSERT_EQ(image.entrypoint, std::vector<std::string>{"/usr/local/bin/prefork"});
    ASSERT_FALSE(image.cmd.empty());
    ASSERT_EQ(image.healthcheck, (std::vector<std::string>{"preforkctl", "health"}));
    ASSERT_EQ(image.user, "prefork");
    ASSERT_TRUE(image.env.count("PREFORK_ADMIN"));

    // As the container runtime would: new pid and mount namespaces, an unprivileged user
    // (the image's "prefork" user does not exist here: nobody stands in for it).
    InstalledBinaries installed;
    std::vector<std::string> argv{"unshare",       "--pid",          "--fork",
                                  "--mount-proc",  "setpriv",        "--reuid=65534",
                                  "--regid=65534", "--clear-groups", "--"};
    for (const auto& word : image.entrypoint) argv.push_back(installed.map(word));
    for (const auto& word : image.cmd) argv.push_back(installed.map(word));
    std::vector<std::string> env;
    for (const auto& [name, value] : image.env) env.push_back(name + "=" + installed.map(value));
    ChildProcess container(argv, env);

    auto ready = container.wait_for_lines(" ready (generation", 1);
    ASSERT_FALSE(ready.empty()) << container.output();
    auto inside = container.children();
    ASSERT_EQ(inside.size(), 1u);
    pid_t prefork = inside[0];
    std::ifstream status("/proc/" + std::to_string(prefork) + "/status");
    std::string line;
    while (std::getline(status, line) && !line.starts_with("Uid:")) {
    }
    EXPECT_TRUE(line.starts_with("Uid:\t65534")) << line;
    std::ifstream ns_pid("/proc/" + std::to_string(prefork) + "/status");
    std::string text((std::istreambuf_iterator<char>(ns_pid)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("NSpid:\t" + std::to_string(prefork) + "\t1\n"), std::string::npos)
        << "not PID 1";

    auto port_of = [&](const std::string& marker) {
        auto lines = container.wait_for_lines(marker, 1);
        if (lines.empty())
            throw std::runtime_error("no '" + marker + "' in:\n" + container.output());
        auto start = lines[0].find(marker) + marker.size();
        return static_cast<std::uint16_t>(
            std::stoi(lines[0].substr(start, lines[0].find(' ', start) - start)));
    };
    auto port = port_of("listening on 127.0.0.1:");
    auto admin = port_of("admin endpoint on 127.0.0.1:");
    EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");

    std::vector<std::string> health_argv;
    for (const auto& word : image.healthcheck) health_argv.push_back(installed.map(word));
    ChildProcess health(health_argv, {"PREFORK_ADMIN=127.0.0.1:" + std::to_string(admin)});
    EXPECT_EQ(health.wait_exit_status(10s), 0) << health.output();

    // A handler's child, orphaned when its worker crashes, is reaped by PID 1.
    HttpConnection connection(port);
    ASSERT_FALSE(connection.get("/spawn?seconds=1").body().empty());
    pid_t orphan = 0;  // its pid out here: the child of a worker
    for (pid_t worker : child_pids(prefork)) {
        for (pid_t child : child_pids(worker)) orphan = child;
    }
    ASSERT_NE(orphan, 0) << "the handler's child is not a worker's child";
    connection.send_raw("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THROW(connection.read_response(), boost::system::system_error);
    // The orphan (sleep 1) exits, and PID 1 reaps it: nothing is left of it, not even a zombie.
    EXPECT_TRUE(eventually([&] { return process_state(orphan) == '\0'; }, 11s))
        << "the orphan was not reaped";
    EXPECT_TRUE(zombie_children(prefork).empty()) << "zombies left under PID 1";

    ::kill(prefork, SIGTERM);  // what `docker stop` sends (STOPSIGNAL SIGTERM)
    EXPECT_EQ(container.wait_exit_status(20s), 0) << container.output();
    EXPECT_TRUE(port_is_free(port));
}

// --- systemd --------------------------------------------------------------------------------

// A datagram socket standing in for systemd's NOTIFY_SOCKET.
class NotifySocket {
  public:
    NotifySocket() : path_("/tmp/prefork-notify-" + std::to_string(::getpid()) + ".sock") {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, path_.c_str());
        ::unlink(path_.c_str());
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
            throw std::runtime_error("bind " + path_);
        }
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    const std::string& path() const { return path_; }
    // The next notification, or "" after the timeout.
    std::string next(std::chrono::milliseconds timeout = 10s) {
        pollfd ready{fd_, POLLIN, 0};
        if (::poll(&ready, 1, static_cast<int>(timeout.count())) <= 0) return "";
        char buffer[4096];
        ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
        return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : "";
    }

  private:
    std::string path_;
    int fd_;
};

TEST(Systemd, NotifiesReadyReloadingAndStopping) {
    NotifySocket notify;
    PreforkServer server(Loopback{.workers = 2, .env = {"NOTIFY_SOCKET=" + notify.path()}});
    std::string ready = notify.next();
    EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
    EXPECT_NE(ready.find("STATUS=2 workers ready"), std::string::npos) << ready;
    EXPECT_EQ(http_get(server.port(), "/env?name=NOTIFY_SOCKET").result_int(), 404)
        << "workers must not see it";

    server.signal(SIGHUP);
    std::string reloading = notify.next();
    EXPECT_NE(reloading.find("RELOADING=1"), std::string::npos) << reloading;
    EXPECT_NE(reloading.find("MONOTONIC_USEC="), std::string::npos) << reloading;
    std::string ready_again = notify.next();
    EXPECT_NE(ready_again.find("READY=1"), std::string::npos) << ready_again;
    EXPECT_EQ(server.wait_for_lines("reload to generation 2 complete", 1, 0ms).size(), 1u)
        << "READY=1 came before the old generation had drained";

    server.signal(SIGTERM);
    std::string stopping = notify.next();
    EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

// An upgrade in place (here to the same build) is a reload to systemd: RELOADING=1, then
// READY=1 once the new image's workers are ready and the old ones gone; the new image
// notifies the same socket, and no worker sees it or the upgrade's state.
TEST(Systemd, AnUpgradeNotifiesReloadingThenReadyFromTheNewImage) {
    NotifySocket notify;
    PreforkServer server(Loopback{.workers = 2, .env = {"NOTIFY_SOCKET=" + notify.path()}});
    EXPECT_NE(notify.next().find("READY=1"), std::string::npos);

    server.signal(SIGUSR2);
    std::string reloading = notify.next();
    EXPECT_NE(reloading.find("RELOADING=1"), std::string::npos) << reloading;
    std::string ready = notify.next();
    EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
    EXPECT_EQ(server.wait_for_lines("upgrade from prefork", 1, 0ms).size(), 1u)
        << "READY=1 came before the upgrade was complete\n"
        << server.output();
    EXPECT_EQ(http_get(server.port(), "/env?name=NOTIFY_SOCKET").result_int(), 404);
    EXPECT_EQ(http_get(server.port(), "/env?name=PREFORK_UPGRADE_STATE").result_int(), 404);

    server.signal(SIGTERM);
    EXPECT_NE(notify.next().find("STOPPING=1"), std::string::npos);
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t length = sizeof(address);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    ::close(fd);
    return ntohs(address.sin_port);
}

std::set<std::string> socket_inodes(pid_t pid) {
    std::set<std::string> inodes;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
        std::error_code ec;
        auto target = fs::read_symlink(entry.path(), ec).string();
        if (target.starts_with("socket:")) inodes.insert(target);
    }
    return inodes;
}

TEST(Systemd, SocketActivationServesOnThePassedSocketAndKeepsItAcrossReloads) {
    auto port = free_port();
    ChildProcess activated({"systemd-socket-activate", "-l", "127.0.0.1:" + std::to_string(port),
                            "--fdname=http", prefork_binary(), "--bind", "127.0.0.1:1", "--workers",
                            "2", "--", demo_binary()});
    // systemd-socket-activate starts prefork at the first connection (once it listens).
    std::unique_ptr<HttpConnection> first;
    eventually(
        [&] {
            try {
                first = std::make_unique<HttpConnection>(port, 30s);
            } catch (const boost::system::system_error&) {
            }
            return first != nullptr;
        },
        10s);
    ASSERT_TRUE(first) << "systemd-socket-activate did not listen\n" << activated.output();
    EXPECT_EQ(first->get("/").body(), "Hello, World!") << activated.output();
    ASSERT_EQ(activated.wait_for_lines(" ready (generation", 2).size(), 2u) << activated.output();
    EXPECT_EQ(activated.wait_for_lines("(http, from systemd)", 1, 0ms).size(), 1u)
        << activated.output();
    EXPECT_EQ(activated.wait_for_lines("(127.0.0.1:1)", 1, 0ms).size(), 0u)
        << "bound --bind anyway";
    EXPECT_EQ(http_get(port, "/env?name=LISTEN_FDS").result_int(), 404)
        << "workers must not see it";

    auto before = socket_inodes(activated.pid());
    activated.signal(SIGHUP);
    ASSERT_EQ(activated.wait_for_lines("reload to generation 2 complete", 1).size(), 1u)
        << activated.output();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");
    auto after = socket_inodes(activated.pid());
    std::vector<std::string> kept;
    std::set_intersection(before.begin(), before.end(), after.begin(), after.end(),
                          std::back_inserter(kept));
    EXPECT_FALSE(kept.empty()) << "the passed socket was replaced";

    // An upgrade in place keeps it too (the same binary, exec'ed again).
    activated.signal(SIGUSR2);
    ASSERT_EQ(activated.wait_for_lines("upgrade from prefork", 1).size(), 1u) << activated.output();
    for (int i = 0; i < 5; ++i) EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");
    auto upgraded = socket_inodes(activated.pid());
    EXPECT_TRUE(std::includes(upgraded.begin(), upgraded.end(), kept.begin(), kept.end()))
        << "the passed socket did not cross the upgrade";

    activated.signal(SIGTERM);
    EXPECT_EQ(activated.wait_exit_status(10s), 0);
}

// --- load balancers ---------------------------------------------------------------------------

TEST(ShutdownDelay, NotReadyAtOnceServesForTheDelayThenFreesThePort) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--shutdown-delay", "5"}});
    auto port = server.port();
    auto admin = server.admin_port();
    auto term_at = std::chrono::steady_clock::now();
    server.signal(SIGTERM);
    EXPECT_EQ(wait_for_status(admin, "/readyz", 503, 3s), 503u) << "still ready after TERM";

    // Still serving, on new connections too, while the load balancer takes note.
    int served = 0;
    while (std::chrono::steady_clock::now() - term_at < 3s) {
        EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");
        ++served;
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_GE(served, 3);
    EXPECT_EQ(server.wait_exit_status(15s), 0) << server.output();
    EXPECT_GE(std::chrono::steady_clock::now() - term_at, 5s)
        << "stopped before the delay was over";
    EXPECT_TRUE(port_is_free(port));
}

// auto: the delay ends once the load balancer has stopped sending, not at its maximum. The
// load here (new connections and keep-alive requests) stops 2 s after TERM.
TEST(ShutdownDelay, AutoStopsAboutAQuietPeriodAfterTheLastRequest) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--shutdown-delay", "auto:30"}});
    auto port = server.port();
    auto term_at = std::chrono::steady_clock::now();
    server.signal(SIGTERM);
    EXPECT_EQ(wait_for_status(server.admin_port(), "/readyz", 503, 3s), 503u);
    HttpConnection kept(port);
    std::chrono::steady_clock::time_point last_request;
    while (std::chrono::steady_clock::now() - term_at < 2s) {
        EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");  // a new connection
        EXPECT_EQ(kept.get("/").body(), "Hello, World!");        // a keep-alive request
        last_request = std::chrono::steady_clock::now();
        std::this_thread::sleep_for(50ms);  // the load's own pace
    }
    EXPECT_EQ(server.wait_exit_status(35s), 0) << server.output();
    auto after_last = std::chrono::steady_clock::now() - last_request;
    EXPECT_GE(after_last, 900ms) << "stopped before the quiet period had passed";
    EXPECT_LT(after_last, 10s) << "the delay did not end with the traffic";
    EXPECT_EQ(
        server.wait_for_lines("shutdown delay: no new connection or request for 1s", 1, 0ms).size(),
        1u)
        << server.output();
}

// A worker whose loop is stuck cannot report its traffic: its silence is not quiet, and the
// delay goes on (here a client that comes 2 s after TERM, while the loop is still blocked,
// is served instead of finding its connection reset when the listeners close).
TEST(ShutdownDelay, AutoWaitsWhileAWorkerCannotSayWhetherTrafficStopped) {
    PreforkServer server(Loopback{1, {"--shutdown-delay", "auto:15"}});
    pid_t worker = server.children().at(0);
    auto blocked = std::async(std::launch::async, [&] {
        return HttpConnection(server.port(), 20s).get("/block?ms=3000").result_int();
    });
    ASSERT_TRUE(wait_until_in_nanosleep(worker, 5s));
    server.signal(SIGTERM);
    std::this_thread::sleep_for(2s);  // the traffic's shape: the next client comes 2 s later
    EXPECT_EQ(HttpConnection(server.port(), 20s).get("/").body(), "Hello, World!");
    EXPECT_EQ(blocked.get(), 200);
    EXPECT_EQ(server.wait_exit_status(30s), 0);
}

// auto with traffic that never stops: the delay ends at its maximum, and says so.
TEST(ShutdownDelay, AutoEndsAtItsMaximumWhileTrafficKeepsComing) {
    PreforkServer server(Loopback{1, {"--shutdown-delay", "auto:2"}});
    auto port = server.port();
    server.signal(SIGTERM);
    HttpConnection kept(port);
    auto stopped = std::async(std::launch::async, [&] { return server.wait_exit_status(20s); });
    while (stopped.wait_for(100ms) != std::future_status::ready) {
        try {
            kept.get("/");
        } catch (const std::exception&) {
            // the connection closed with the stop
        }
    }
    EXPECT_EQ(stopped.get(), 0);
    EXPECT_EQ(server.wait_for_lines("shutdown delay: traffic still came after 2s", 1, 0ms).size(),
              1u)
        << server.output();
}

}  // namespace
}  // namespace prefork::testing

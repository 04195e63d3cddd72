// What a user sees when prefork cannot start: one line naming the problem, and the exit
// status that says whose mistake it was.

#include "child_process.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>

#include <sstream>

namespace prefork::testing {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// A port on 127.0.0.1 that a listening socket of the test holds.
class BusyPort {
  public:
    BusyPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
            ::listen(fd_, 1) != 0) {
            throw std::runtime_error("cannot hold a port on 127.0.0.1");
        }
        socklen_t length = sizeof(address);
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
    }
    ~BusyPort() { ::close(fd_); }
    BusyPort(const BusyPort&) = delete;
    BusyPort& operator=(const BusyPort&) = delete;
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  private:
    int fd_;
    std::uint16_t port_ = 0;
};

TEST(Startup, BusyPortExitsOneWithOneLineNamingTheAddress) {
    BusyPort busy;
    std::string bind = busy.address();

    ChildProcess prefork({prefork_binary(), "--bind", bind, "--", demo_binary()});
    EXPECT_EQ(prefork.wait_exit_status(5s), 1);
    auto lines = lines_of(prefork.output());
    ASSERT_EQ(lines.size(), 1u) << prefork.output();
    EXPECT_NE(lines[0].find(bind), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("Address already in use"), std::string::npos) << lines[0];
}

TEST(Startup, BadAddressIsAUsageError) {
    ChildProcess prefork({prefork_binary(), "--bind", "localhost", "--", demo_binary()});
    EXPECT_EQ(prefork.wait_exit_status(5s), 2);
    auto lines = lines_of(prefork.output());
    ASSERT_EQ(lines.size(), 1u) << prefork.output();
    EXPECT_NE(lines[0].find("\"localhost\""), std::string::npos) << lines[0];
}

TEST(Startup, UnknownOptionAndMissingCommandAreUsageErrors) {
    ChildProcess unknown({prefork_binary(), "--frobnicate", "--", demo_binary()});
    EXPECT_EQ(unknown.wait_exit_status(5s), 2);
    EXPECT_EQ(lines_of(unknown.output()).size(), 1u) << unknown.output();

    ChildProcess no_command({prefork_binary(), "--workers", "1"});
    EXPECT_EQ(no_command.wait_exit_status(5s), 2);
    EXPECT_EQ(lines_of(no_command.output()).size(), 1u) << no_command.output();
}

TEST(Startup, WorkerCommandThatDoesNotExistExitsOne) {
    ChildProcess prefork({prefork_binary(), "--bind", "127.0.0.1:0", "--", "/nonexistent/app"});
    EXPECT_EQ(prefork.wait_exit_status(10s), 1) << prefork.output();
    EXPECT_NE(prefork.output().find("/nonexistent/app"), std::string::npos);
}

TEST(Startup, HelpAndVersion) {
    ChildProcess help({prefork_binary(), "--help"});
    EXPECT_EQ(help.wait_exit_status(5s), 0);
    EXPECT_NE(help.output().find("usage: prefork"), std::string::npos);
    ChildProcess version({prefork_binary(), "--version"});
    EXPECT_EQ(version.wait_exit_status(5s), 0);
    EXPECT_TRUE(version.output().starts_with("prefork "));
}

// --check reads everything a start would use and binds nothing: an address another
// socket holds passes (a start would find it busy), and the verdict is the exit status.
TEST(Startup, CheckAcceptsAValidConfigurationAndBindsNothing) {
    BusyPort busy;
    std::string bind = busy.address();

    ChildProcess check(
        {prefork_binary(), "--check", "--bind", bind, "--workers", "3", "--", demo_binary()});
    EXPECT_EQ(check.wait_exit_status(5s), 0) << check.output();
    EXPECT_TRUE(check.output().starts_with("prefork ")) << check.output();
    EXPECT_NE(check.output().find("the configuration is valid"), std::string::npos)
        << check.output();
}

TEST(Startup, CheckRefusesWhatAStartWouldRefuseWithOneLine) {
    TempDir dir;
    std::ofstream(dir.path("broken.toml")) << "workers = \n";
    std::ofstream(dir.path("not-executable")) << "#!/bin/sh\n";
    struct Case {
        std::vector<std::string> argv;
        std::vector<std::string> env;
        std::string named;  // in the line that says why
    };
    std::vector<Case> cases = {
        {{"--bind", "localhost", "--", demo_binary()}, {}, "localhost"},
        {{"--config", dir.path("broken.toml")}, {}, "broken.toml"},
        {{"--config", dir.path("missing.toml")}, {}, "missing.toml"},
        {{"--", "/nonexistent/app"}, {}, "/nonexistent/app"},
        {{"--", "no-such-program-on-path"}, {}, "no-such-program-on-path"},
        {{"--", dir.path("not-executable")}, {}, "not-executable"},
        {{"--", demo_binary()}, {"PREFORK_WORKERS=many"}, "many"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> argv = {prefork_binary(), "--check"};
        argv.insert(argv.end(), c.argv.begin(), c.argv.end());
        ChildProcess check(argv, c.env);
        EXPECT_EQ(check.wait_exit_status(5s), 2) << c.named << ": " << check.output();
        auto lines = lines_of(check.output());
        ASSERT_EQ(lines.size(), 1u) << c.named << ": " << check.output();
        EXPECT_NE(lines[0].find(c.named), std::string::npos) << lines[0];
    }
}

TEST(Startup, StaleUnixSocketFileIsReplaced) {
    TempDir dir;
    std::string path = dir.path("app.sock");
    {
        int stale = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strcpy(address.sun_path, path.c_str());
        ASSERT_EQ(::bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        ::close(stale);  // the file stays, nothing listens: left by a server that died
    }
    {
        PreforkServer server({"--bind", "unix:" + path, "--workers", "1"}, 1);
        EXPECT_EQ(HttpConnection(path).get("/").body(), "Hello, World!");
    }
}

TEST(Startup, PidFileHoldsTheMasterPidUntilItStops) {
    std::string path = "/tmp/prefork-it-pid-" + std::to_string(::getpid());
    PreforkServer server(Loopback{1, {"--pid-file", path}});
    std::ifstream in(path);
    pid_t pid = 0;
    in >> pid;
    EXPECT_EQ(pid, server.pid());
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(10s), 0);
    EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

TEST(Startup, JsonLogLinesAreJson) {
    PreforkServer server(Loopback{1, {"--log-format", "json"}});
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(10s), 0);
    for (const auto& line : lines_of(server.output())) {
        EXPECT_TRUE(line.starts_with("{\"time\":\"") && line.ends_with("}")) << line;
        bool has_role = line.find("\"role\":\"master\"") != std::string::npos ||
                        line.find("\"role\":\"worker\"") != std::string::npos;
        EXPECT_TRUE(has_role) << line;
    }
}

}  // namespace
}  // namespace prefork::testing

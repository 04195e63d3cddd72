#include <prefork/common/listen_address.hpp>

#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

namespace prefork {
namespace {

TEST(ListenAddress, ParsesTheThreeForms) {
    auto v4 = parse_listen_address("127.0.0.1:8080");
    EXPECT_EQ(v4.kind, ListenAddress::Kind::tcp);
    EXPECT_EQ(v4.host, "127.0.0.1");
    EXPECT_EQ(v4.port, 8080);

    auto v6 = parse_listen_address("[::1]:443");
    EXPECT_EQ(v6.host, "::1");
    EXPECT_EQ(v6.port, 443);
    EXPECT_EQ(v6.to_string(), "[::1]:443");

    auto unix_socket = parse_listen_address("unix:/run/app.sock");
    EXPECT_EQ(unix_socket.kind, ListenAddress::Kind::unix_socket);
    EXPECT_EQ(unix_socket.path, "/run/app.sock");
    EXPECT_EQ(unix_socket.to_string(), "unix:/run/app.sock");

    EXPECT_EQ(parse_listen_address("localhost:0").host, "localhost");
    EXPECT_EQ(parse_listen_address("0.0.0.0:65535").port, 65535);
}

TEST(ListenAddress, RejectsWhatIsNotAnAddress) {
    for (const char* bad :
         {"", "8080", ":8080", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1",
          "[::1]8080", "[::1]:", "[nonsense]:80", "::1:80", "unix:", "127.0.0.1:80x"}) {
        EXPECT_THROW(parse_listen_address(bad), AddressError) << bad;
    }
    EXPECT_THROW(parse_listen_address("unix:/" + std::string(200, 'a')), AddressError);
}

TEST(ListenAddress, ErrorNamesTheAddress) {
    try {
        parse_listen_address("127.0.0.1:99999");
        FAIL() << "no error";
    } catch (const AddressError& error) {
        EXPECT_NE(std::string(error.what()).find("127.0.0.1:99999"), std::string::npos);
    }
}

TEST(BindListener, TcpSocketIsCloseOnExecAndListening) {
    UniqueFd fd = bind_listener(parse_listen_address("127.0.0.1:0"));
    EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
    int listening = 0;
    socklen_t length = sizeof(listening);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &length);
    EXPECT_EQ(listening, 1);
    EXPECT_TRUE(local_address(fd.get()).starts_with("127.0.0.1:"));
}

TEST(BindListener, BusyPortNamesTheAddressAndTheReason) {
    UniqueFd first = bind_listener(parse_listen_address("127.0.0.1:0"));
    std::string address = local_address(first.get());
    try {
        bind_listener(parse_listen_address(address));
        FAIL() << "bound a busy port";
    } catch (const AddressError& error) {
        std::string what = error.what();
        EXPECT_NE(what.find(address), std::string::npos) << what;
        EXPECT_NE(what.find("Address already in use"), std::string::npos) << what;
    }
}

class UnixSocketPath : public ::testing::Test {
  protected:
    prefork::testing::TempDir dir_{"prefork-unit"};
    std::string path_ = dir_.path("app.sock");
};

TEST_F(UnixSocketPath, StaleSocketFileIsReplaced) {
    {
        UniqueFd old = bind_listener(parse_listen_address("unix:" + path_));
    }  // closed, file left behind as by a server that died
    ASSERT_EQ(::access(path_.c_str(), F_OK), 0);
    UniqueFd fd = bind_listener(parse_listen_address("unix:" + path_));
    EXPECT_TRUE(fd.valid());
}

TEST_F(UnixSocketPath, SocketInUseIsNotTakenOver) {
    UniqueFd live = bind_listener(parse_listen_address("unix:" + path_));
    EXPECT_THROW(bind_listener(parse_listen_address("unix:" + path_)), AddressError);
}

TEST_F(UnixSocketPath, FileThatIsNotASocketIsLeftAlone) {
    std::ofstream(path_) << "precious";
    EXPECT_THROW(bind_listener(parse_listen_address("unix:" + path_)), AddressError);
    std::ifstream in(path_);
    std::string content;
    in >> content;
    EXPECT_EQ(content, "precious");
}

}  // namespace
}  // namespace prefork

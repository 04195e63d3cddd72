// Stopping: TERM finishes what is in flight and frees the port; a second TERM or QUIT
// stops at once; a master killed outright leaves no worker holding the port.

#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <future>

namespace prefork::testing {
namespace {

TEST(Stop, TermExitsZeroAndThePortCanBeBoundRightAfter) {
    PreforkServer server(Loopback{2});
    auto port = server.port();
    auto workers = server.children();
    EXPECT_EQ(http_get(port, "/").result_int(), 200);
    EXPECT_FALSE(port_is_free(port));

    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(10s), 0) << server.output();
    EXPECT_TRUE(wait_until_gone(workers, 5s));
    EXPECT_TRUE(port_is_free(port));
}

TEST(Stop, TermLetsInFlightRequestsFinishAndClosesTheirConnections) {
    PreforkServer server(Loopback{2, {"--graceful-timeout", "10", "--admin", "127.0.0.1:0"}});
    HttpConnection in_flight(server.port(), 20s);
    in_flight.send_raw("GET /sleep?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));

    server.signal(SIGTERM);
    // The listeners close at once: a new connection is refused while the old request runs.
    EXPECT_TRUE(server.wait_for_lines("draining: listeners closed", 2, 10s).size() == 2);
    EXPECT_THROW(HttpConnection(server.port()), boost::system::system_error);

    auto response = in_flight.read_response();
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_EQ(response.body(), "slept 4000 ms\n");
    EXPECT_EQ(response[http::field::connection], "close");
    EXPECT_TRUE(in_flight.closed_by_peer());
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

TEST(Stop, IdleKeepAliveConnectionsDoNotHoldUpTheStop) {
    PreforkServer server(Loopback{2});
    std::vector<std::unique_ptr<HttpConnection>> idle;
    for (int i = 0; i < 8; ++i) {
        idle.push_back(std::make_unique<HttpConnection>(server.port()));
        ASSERT_EQ(idle.back()->get("/").result_int(), 200);
    }
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(20s), 0);
    for (auto& connection : idle) EXPECT_TRUE(connection->closed_by_peer());
}

TEST(Stop, GracefulTimeoutEndsRequestsThatTakeTooLong) {
    PreforkServer server(Loopback{1, {"--graceful-timeout", "1", "--admin", "127.0.0.1:0"}});
    HttpConnection slow(server.port(), 10s);
    slow.send_raw("GET /sleep?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(20s), 0) << server.output();
    EXPECT_TRUE(slow.closed_by_peer());
}

TEST(Stop, SecondTermStopsAtOnce) {
    PreforkServer server(Loopback{2, {"--graceful-timeout", "60", "--admin", "127.0.0.1:0"}});
    auto workers = server.children();
    HttpConnection slow(server.port(), 10s);
    slow.send_raw("GET /sleep?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    server.signal(SIGTERM);
    EXPECT_FALSE(server.wait_exit(500ms)) << "the first TERM waits for the request";
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(15s), 0) << server.output();  // not after 60 s
    EXPECT_TRUE(wait_until_gone(workers, 10s));
}

TEST(Stop, QuitStopsAtOnce) {
    PreforkServer server(Loopback{2, {"--graceful-timeout", "60", "--admin", "127.0.0.1:0"}});
    auto port = server.port();
    auto workers = server.children();
    HttpConnection slow(server.port(), 10s);
    slow.send_raw("GET /sleep?ms=60000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    server.signal(SIGQUIT);
    EXPECT_EQ(server.wait_exit_status(15s), 0);  // not after 60 s
    EXPECT_TRUE(wait_until_gone(workers, 10s));
    EXPECT_TRUE(port_is_free(port));
}

TEST(Stop, WhenTheMasterIsKilledEveryWorkerExitsAndThePortIsFree) {
    PreforkServer server(Loopback{2});
    auto port = server.port();
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 2u);
    HttpConnection idle(port);
    ASSERT_EQ(idle.get("/").result_int(), 200);

    server.signal(SIGKILL);
    ASSERT_TRUE(server.wait_exit(5s));
    EXPECT_TRUE(wait_until_gone(workers, 10s)) << "a worker outlived its master";
    EXPECT_TRUE(port_is_free(port));
    EXPECT_TRUE(idle.closed_by_peer());
}

}  // namespace
}  // namespace prefork::testing

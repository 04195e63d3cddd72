// The master hands its sockets to real workers, which serve the demo over real sockets.

#include "child_process.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <future>
#include <set>

namespace prefork::testing {
namespace {

TEST(Serving, RequestsAreAnsweredByBothWorkers) {
    PreforkServer server(Loopback{2});
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 2u);

    std::set<std::string> answered_by;
    for (int i = 0; i < 400 && answered_by.size() < 2; ++i) {
        auto response = http_get(server.port(), "/pid");
        ASSERT_EQ(response.result_int(), 200);
        answered_by.insert(response.body());
    }
    std::set<std::string> expected{std::to_string(workers[0]), std::to_string(workers[1])};
    EXPECT_EQ(answered_by, expected);
}

TEST(Serving, HelloWorldWithTheHeadersThatHttpAsksFor) {
    PreforkServer server(Loopback{1});
    auto response = http_get(server.port(), "/");
    EXPECT_EQ(response.result_int(), 200);
    EXPECT_EQ(response.body(), "Hello, World!");
    EXPECT_EQ(response[http::field::content_type], "text/plain; charset=utf-8");
    EXPECT_EQ(response[http::field::content_length], "13");
    EXPECT_EQ(response[http::field::server], "prefork");
    EXPECT_TRUE(response[http::field::date].ends_with(" GMT"));
}

TEST(Serving, KeepAliveServesManyRequestsOnOneConnection) {
    PreforkServer server(Loopback{2});
    HttpConnection connection(server.port());
    std::string first_pid = connection.get("/pid").body();
    for (int i = 0; i < 20; ++i) {
        auto response = connection.get("/pid");
        ASSERT_EQ(response.result_int(), 200);
        EXPECT_EQ(response.body(), first_pid) << "a keep-alive connection stays with its worker";
        EXPECT_TRUE(response.keep_alive());
    }
}

TEST(Serving, PipelinedRequestsAreAnsweredInOrder) {
    PreforkServer server(Loopback{1});
    HttpConnection connection(server.port());
    std::string pipelined;
    std::vector<std::string> bodies = {"first", "second-and-longer", "3", "fourth"};
    for (const auto& body : bodies) {
        pipelined +=
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/x-test\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    pipelined += "GET /sleep?ms=50 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    connection.send_raw(pipelined);  // all in one write
    for (const auto& body : bodies) {
        auto response = connection.read_response();
        EXPECT_EQ(response.body(), body);
        EXPECT_EQ(response[http::field::content_type], "text/x-test");
    }
    EXPECT_EQ(connection.read_response().body(), "slept 50 ms\n");
    EXPECT_EQ(connection.read_response().body(), "Hello, World!");
}

TEST(Serving, ConnectionCloseIsHonouredBothWays) {
    PreforkServer server(Loopback{1});
    HttpConnection connection(server.port());
    connection.send_raw("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    auto response = connection.read_response();
    EXPECT_EQ(response.body(), "Hello, World!");
    EXPECT_EQ(response[http::field::connection], "close");
    EXPECT_TRUE(connection.closed_by_peer());

    HttpConnection old_client(server.port());
    old_client.send_raw("GET / HTTP/1.0\r\n\r\n");  // HTTP/1.0 without keep-alive closes too
    EXPECT_EQ(old_client.read_response().body(), "Hello, World!");
    EXPECT_TRUE(old_client.closed_by_peer());
}

TEST(Serving, HeadNotFoundAndMethodNotAllowed) {
    PreforkServer server(Loopback{1});
    HttpConnection connection(server.port());
    auto head = connection.request(http::verb::head, "/bytes?n=1234");
    EXPECT_EQ(head.result_int(), 200);
    EXPECT_EQ(head[http::field::content_length], "1234");
    EXPECT_EQ(head.body(), "");

    auto missing = connection.get("/no/such/path");
    EXPECT_EQ(missing.result_int(), 404);

    auto wrong = connection.request(http::verb::delete_, "/");
    EXPECT_EQ(wrong.result_int(), 405);
    EXPECT_EQ(wrong[http::field::allow], "GET, HEAD");
    EXPECT_EQ(connection.get("/").result_int(), 200) << "errors keep the connection usable";
}

TEST(Serving, MalformedRequestGets400AndTheConnectionIsClosed) {
    PreforkServer server(Loopback{1});
    HttpConnection connection(server.port());
    connection.send_raw("GET / HTTP/1.1\r\nHost x\r\n\r\n");
    EXPECT_EQ(connection.read_response().result_int(), 400);
    EXPECT_TRUE(connection.closed_by_peer());
}

TEST(Serving, DemoEndpoints) {
    PreforkServer server(Loopback{1, {"--env", "GREETING=hi there"}});
    HttpConnection connection(server.port());
    EXPECT_EQ(connection.get("/bytes?n=100000").body(), std::string(100000, 'x'));
    EXPECT_EQ(connection.get("/bytes?n=-1").result_int(), 400);
    EXPECT_EQ(connection.get("/env?name=GREETING").body(), "hi there");
    EXPECT_EQ(connection.get("/env?name=PREFORK_CONTROL_FD").result_int(), 404)
        << "the worker hides the control socket's variable from what it starts";
    auto echo = connection.request(http::verb::post, "/echo", "{\"k\":1}", "application/json");
    EXPECT_EQ(echo.body(), "{\"k\":1}");
    EXPECT_EQ(echo[http::field::content_type], "application/json");
    EXPECT_EQ(connection.get("/block?ms=10").result_int(), 200);
}

TEST(Serving, SleepWaitsOnATimerWithoutBlockingTheLoop) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    auto sleeping = std::async(std::launch::async, [&] {
        return HttpConnection(server.port(), 30s).get("/sleep?ms=6000");
    });
    ASSERT_TRUE(server.wait_for_requests_received(1));
    // The only worker is waiting on a timer, not blocked: it answers at once.
    HttpConnection connection(server.port(), 3s);
    EXPECT_EQ(connection.get("/").body(), "Hello, World!");
    EXPECT_EQ(sleeping.get().body(), "slept 6000 ms\n");
}

TEST(Serving, HandlerThatDoesNotAnswerInTimeGets503) {
    PreforkServer server(Loopback{1, {"--env", "PREFORK_HANDLER_TIMEOUT=0.5"}});
    HttpConnection connection(server.port(), 10s);
    auto started = std::chrono::steady_clock::now();
    auto response = connection.get("/sleep?ms=4000");
    EXPECT_EQ(response.result_int(), 503);
    EXPECT_EQ(response[http::field::connection], "close");
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3500ms)
        << "the handler's own answer came first";
    EXPECT_TRUE(connection.closed_by_peer());
    EXPECT_EQ(server.wait_for_lines("did not answer within 500 ms", 1).size(), 1u);
    // The late answer is ignored, and the worker serves on.
    std::this_thread::sleep_until(started + 4500ms);
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u);
}

TEST(Serving, WhileOneWorkerIsBlockedTheOtherAnswers) {
    PreforkServer server(Loopback{2});
    HttpConnection blocked(server.port(), 30s);
    std::string blocked_worker = blocked.get("/pid").body();
    blocked.send_raw("GET /block?ms=10000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(wait_until_in_nanosleep(std::stoi(blocked_worker), 10s));

    // Each of these would wait the whole 10 s if it landed on the blocked worker; the
    // client gives up after 3 s.
    std::set<std::string> answered_by;
    for (int i = 0; i < 10; ++i) {
        HttpConnection connection(server.port(), 3s);
        auto response = connection.get("/pid");
        ASSERT_EQ(response.result_int(), 200);
        answered_by.insert(response.body());
    }
    EXPECT_EQ(answered_by.size(), 1u) << "only the free worker answered";
    EXPECT_EQ(answered_by.count(blocked_worker), 0u);
    EXPECT_EQ(blocked.read_response().result_int(), 200);
}

TEST(Serving, UnixSocketServesAndItsFileIsRemovedAfterStop) {
    TempDir dir;
    std::string path = dir.path("app.sock");
    {
        PreforkServer server({"--bind", "unix:" + path, "--workers", "1"}, 1);
        HttpConnection connection(path);
        EXPECT_EQ(connection.get("/").body(), "Hello, World!");
        server.signal(SIGTERM);
        EXPECT_EQ(server.wait_exit_status(10s), 0);
        EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket file left behind";
    }
}

TEST(Serving, TcpAndUnixListenersTogether) {
    TempDir dir;
    std::string path = dir.path("app.sock");
    {
        PreforkServer server(Loopback{1, {"--bind", "unix:" + path}});
        EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
        EXPECT_EQ(HttpConnection(path).get("/").body(), "Hello, World!");
    }
}

TEST(Serving, DemoServesAloneWithoutTheMaster) {
    ChildProcess demo({demo_binary(), "--bind", "127.0.0.1:0"});
    auto lines = demo.wait_for_lines("listening on 127.0.0.1:", 1);
    ASSERT_EQ(lines.size(), 1u) << demo.output();
    auto port = static_cast<std::uint16_t>(std::stoi(lines[0].substr(lines[0].rfind(':') + 1)));
    EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");
    demo.signal(SIGTERM);
    EXPECT_EQ(demo.wait_exit_status(10s), 0);
    EXPECT_TRUE(port_is_free(port));
}

}  // namespace
}  // namespace prefork::testing

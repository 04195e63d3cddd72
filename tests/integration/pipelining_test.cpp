// Pipelined requests: a burst is answered in order, its responses written together, and
// nothing that waits (a handler that answers later, input still to come, a client that
// does not read) holds back the responses before it or makes the worker buffer more.

#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "raw_client.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/parser.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace prefork::testing {
namespace {

using namespace std::chrono_literals;

// The next response of what `client` receives (`pending`: received, not parsed yet).
HttpResponse next_response(RawClient& client, std::string& pending) {
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(boost::none);
    for (int empty_reads = 0; empty_reads < 100;) {
        boost::beast::error_code ec;
        std::size_t used = parser.put(boost::asio::buffer(pending), ec);
        pending.erase(0, used);
        if (ec && ec != http::error::need_more) throw boost::system::system_error(ec);
        if (parser.is_done()) return parser.release();
        if (used > 0 && !pending.empty()) continue;
        bool eof = false;
        std::string more = client.read_some(100ms, &eof);
        if (eof) throw std::runtime_error("the server closed the connection");
        empty_reads = more.empty() ? empty_reads + 1 : 0;
        pending += more;
    }
    throw std::runtime_error("no response within 10 s");
}

TEST(Pipelining, ABurstOfMixedRequestsIsAnsweredInOrderEvenToASlowReader) {
    PreforkServer server(Loopback{1});
    // A small receive window: the server's writes stop part-way, batch and all.
    RawClient client(server.port(), 4096);
    std::vector<std::string> expected;
    std::string burst;
    for (int i = 0; i < 200; ++i) {
        switch (i % 5) {
            case 0:
                burst += get_request("/");
                expected.push_back("Hello, World!");
                break;
            case 1: {
                std::string body = "body " + std::to_string(i);
                burst += "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\n\r\n" + body;
                expected.push_back(body);
                break;
            }
            case 2:
                burst += get_request("/bytes?n=" + std::to_string(i * 37));
                expected.push_back(std::string(static_cast<std::size_t>(i * 37), 'x'));
                break;
            case 3:  // larger than a batch holds
                burst += get_request("/bytes?n=70000");
                expected.push_back(std::string(70000, 'x'));
                break;
            case 4:
                burst += get_request("/no-such-path");
                expected.push_back("");
                break;
        }
    }
    // Sent while the responses are read: a client that wrote it all before reading would
    // wait for the server to read, which waits for it to read.
    std::thread sender([&] { client.send(burst); });
    struct Joined {
        std::thread& thread;
        ~Joined() { thread.join(); }
    } joined{sender};
    std::string pending;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        auto response = next_response(client, pending);
        if (i % 5 == 4) {
            ASSERT_EQ(response.result_int(), 404) << "response " << i;
            continue;
        }
        ASSERT_EQ(response.result_int(), 200) << "response " << i;
        ASSERT_EQ(response.body(), expected[i]) << "response " << i;
    }
    ASSERT_TRUE(client.send(get_request("/")));
    EXPECT_EQ(next_response(client, pending).body(), "Hello, World!")
        << "the connection is still usable";
}

TEST(Pipelining, ResponsesBeforeAHandlerThatAnswersLaterAreNotHeldBackByIt) {
    PreforkServer server(Loopback{1});
    for (const std::string later : {"/sleep?ms=20000", "/later?ms=20000"}) {
        RawClient client(server.port());
        ASSERT_TRUE(client.send(get_request("/") + get_request("/") + get_request("/") +
                                get_request(later) + get_request("/")));
        std::string seen = read_until_count(client, "Hello, World!", 3, 15s);
        EXPECT_EQ(count_of(seen, "Hello, World!"), 3u) << later << ":\n" << seen;
        // The fourth is in its handler for 20 s: nothing after the three comes meanwhile.
        EXPECT_EQ(client.read_some(300ms), "") << later;
    }
}

TEST(Pipelining, ABurstEndingInAPartialRequestIsAnsweredBeforeTheRestArrives) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get_request("/") + get_request("/") + get_request("/") +
                            "GET / HTTP/1.1\r\nHo"));
    std::string seen = read_until_count(client, "Hello, World!", 3, 15s);
    EXPECT_EQ(count_of(seen, "Hello, World!"), 3u) << seen;
    ASSERT_TRUE(client.send("st: x\r\n\r\n"));
    seen = read_until_count(client, "Hello, World!", 1, 15s);
    EXPECT_EQ(count_of(seen, "Hello, World!"), 1u) << seen;
}

TEST(Pipelining, ConnectionCloseEndsTheBurstAtItsRequest) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get_request("/") + get_request("/", "Connection: close\r\n") +
                            get_request("/pid")));
    bool closed = false;
    std::string seen = client.read_to_end(15s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(count_of(seen, "HTTP/1.1 200 OK"), 2u) << seen;
    EXPECT_EQ(count_of(seen, "Connection: close"), 1u) << seen;
    EXPECT_FALSE(client.reset_by_peer()) << "the request after it is not answered, nor reset";
}

TEST(Pipelining, ABurstFromAClientThatHalfClosesIsAnsweredWhole) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    std::string burst;
    for (int i = 0; i < 50; ++i) burst += get_request("/");
    ASSERT_TRUE(client.send(burst));
    ::shutdown(client.fd(), SHUT_WR);
    bool closed = false;
    std::string seen = client.read_to_end(15s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(count_of(seen, "Hello, World!"), 50u);
}

TEST(Pipelining, AnInterimContinueComesAfterTheResponsesBeforeIt) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get_request("/") + get_request("/") +
                            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            "Expect: 100-continue\r\n\r\n"));
    std::string seen = client.read_until("100 Continue\r\n\r\n", 15s);
    ASSERT_EQ(count_of(seen, "Hello, World!"), 2u) << seen;
    EXPECT_GT(seen.find("100 Continue"), seen.rfind("Hello, World!")) << seen;
    ASSERT_TRUE(client.send("hello"));
    seen = client.read_until("hello", 15s);
    EXPECT_NE(seen.find("\r\n\r\nhello"), std::string::npos) << seen;
}

TEST(Pipelining, AClientThatVanishesWhileItsBurstIsWrittenHurtsNothing) {
    PreforkServer server(Loopback{1});
    HttpConnection other(server.port(), 10s);
    pid_t worker = std::stoi(other.get("/pid").body());
    for (int round = 0; round < 20; ++round) {
        RawClient client(server.port(), 4096);  // a small window: the writes wait
        std::string burst;
        for (int i = 0; i < 40; ++i) burst += get_request(i % 2 ? "/" : "/bytes?n=30000");
        ASSERT_TRUE(client.send(burst));
        client.read_some(20ms);  // some of it, then gone with a reset
        client.reset();
    }
    EXPECT_EQ(other.get("/").body(), "Hello, World!") << "the worker still serves";
    ASSERT_EQ(server.children().size(), 1u);
    EXPECT_EQ(server.children()[0], worker) << "the worker died:\n" << server.output();
}

TEST(Pipelining, AClientThatPipelinesWithoutReadingCostsBoundedMemory) {
    PreforkServer server(Loopback{1, {}, {"PREFORK_WRITE_TIMEOUT=3"}});
    HttpConnection other(server.port(), 10s);
    pid_t worker = std::stoi(other.get("/pid").body());
    std::uint64_t before = resident_kib(worker);

    RawClient hog(server.port(), 4096);
    std::string burst;
    for (int i = 0; i < 200; ++i) burst += get_request("/bytes?n=4000");
    std::size_t sent = 0;
    auto end = std::chrono::steady_clock::now() + 10s;
    // 40 MB of responses asked for; the server stops reading once its writes block.
    while (sent < 10'000 * burst.size() && std::chrono::steady_clock::now() < end) {
        std::size_t n = hog.send_some(burst);
        if (n == 0) {
            if (hog.send_failed()) break;
            std::this_thread::sleep_for(10ms);
            continue;
        }
        sent += n;
        if (n < burst.size()) std::rotate(burst.begin(), burst.begin() + n, burst.end());
    }
    EXPECT_LT(sent, 10'000 * burst.size()) << "the server read everything";
    EXPECT_EQ(other.get("/").body(), "Hello, World!") << "the others are served meanwhile";
    EXPECT_LT(resident_kib(worker), before + 8 * 1024) << "it buffers what the client sends";
}

}  // namespace
}  // namespace prefork::testing

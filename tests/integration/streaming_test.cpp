// Streamed (chunked) responses: parts as they are written, from the loop (demo /stream)
// and from threads (stream_worker), with a bounded buffer against slow clients.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "raw_client.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <map>
#include <random>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string get(const std::string& target, const char* version = "1.1") {
    return "GET " + target + " HTTP/" + version + "\r\nHost: x\r\n\r\n";
}

std::unique_ptr<PreforkServer> stream_worker_server() {
    return PreforkServer::with_worker(Loopback{1}, {STREAM_WORKER_BINARY});
}

std::map<std::string, long long> progress(std::uint16_t port) {
    std::map<std::string, long long> values;
    std::istringstream fields(http_get(port, "/progress").body());
    for (std::string field; fields >> field;) {
        auto eq = field.find('=');
        values[field.substr(0, eq)] = std::stoll(field.substr(eq + 1));
    }
    return values;
}

// The bytes a writer has put into its stream once it has been held back: it has written
// something, and nothing more for half a second (a writer not held back keeps going).
long long written_once_held_back(std::uint16_t port) {
    long long written = 0;
    auto stable_since = Clock::now();
    eventually(
        [&] {
            long long now = progress(port)["written"];
            if (now != written) {
                written = now;
                stable_since = Clock::now();
                return false;
            }
            return written > 0 && Clock::now() - stable_since >= 500ms;
        },
        15s);
    return written;
}

TEST(Streaming, DemoStreamArrivesInPartsAsTheyAreWritten) {
    PreforkServer server(Loopback{1});
    RawClient client(server.port());
    auto started = Clock::now();
    ASSERT_TRUE(client.send(get("/stream?chunks=4&interval_ms=500&size=10")));

    std::string raw = client.read_until("\r\n\r\n", 5s);
    ASSERT_NE(raw.find("HTTP/1.1 200 OK"), std::string::npos) << raw;
    ASSERT_NE(raw.find("Transfer-Encoding: chunked"), std::string::npos) << raw;
    // Each part arrives on its own, about 500 ms after the one before: when one is here,
    // the next is not yet.
    std::vector<Clock::duration> arrivals;
    const std::string letters = "abcd";
    for (std::size_t i = 0; i < letters.size(); ++i) {
        raw = client.read_until(std::string(10, letters[i]), 5s, raw);
        ASSERT_NE(raw.find(std::string(10, letters[i])), std::string::npos) << raw;
        arrivals.push_back(Clock::now() - started);
        if (i + 1 < letters.size()) {
            EXPECT_EQ(raw.find(std::string(10, letters[i + 1])), std::string::npos)
                << "part " << letters[i + 1] << " came together with part " << letters[i];
        }
    }
    raw = client.read_until("0\r\n\r\n", 5s, raw);
    bool complete = false;
    EXPECT_EQ(dechunk(raw, &complete), "aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd");
    EXPECT_TRUE(complete);
    EXPECT_GT(arrivals[3] - arrivals[0], 1s) << "the parts came together";

    // The connection stays open for the next request.
    ASSERT_TRUE(client.send(get("/")));
    EXPECT_NE(client.read_until("Hello, World!", 5s).find("Hello, World!"), std::string::npos);
}

TEST(Streaming, HeadGetsTheHeadersAndHttp10GetsABodyEndedByTheClose) {
    PreforkServer server(Loopback{1});
    {
        RawClient client(server.port());
        ASSERT_TRUE(
            client.send("HEAD /stream?chunks=3&interval_ms=10 HTTP/1.1\r\nHost: x\r\n\r\n"));
        std::string raw = client.read_until("\r\n\r\n", 5s);
        EXPECT_NE(raw.find("Transfer-Encoding: chunked"), std::string::npos) << raw;
        // Nothing of a body came between: the next answer follows.
        ASSERT_TRUE(client.send(get("/")));
        raw = client.read_until("Hello, World!", 5s, raw);
        EXPECT_EQ(raw.substr(raw.find("\r\n\r\n") + 4, 8), "HTTP/1.1") << raw;
    }
    RawClient old_client(server.port());
    ASSERT_TRUE(old_client.send(get("/stream?chunks=3&interval_ms=10&size=4", "1.0")));
    std::string raw = old_client.read_to_end(5s);
    EXPECT_EQ(raw.find("chunked"), std::string::npos) << raw;
    EXPECT_EQ(raw.substr(raw.find("\r\n\r\n") + 4), "aaaabbbbcccc");
}

TEST(Streaming, AWriterThreadWaitsForASlowClientInsteadOfFillingMemory) {
    auto server = stream_worker_server();
    constexpr long long kTotal = 64LL << 20;
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/produce?total=" + std::to_string(kTotal) + "&part=65536")));
    // Not reading: the socket buffers fill, then the stream's, and the writer waits.
    long long written = written_once_held_back(server->port());
    EXPECT_GT(written, 0);
    EXPECT_LT(written, 24LL << 20) << "the writer was not held back";

    // Reading, the whole response arrives, and the writer finishes.
    std::size_t body = 0;
    std::string tail;
    bool saw_header = false;
    for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
        bool eof = false;
        std::string piece = client.read_some(200ms, &eof);
        if (eof) break;
        if (!saw_header) {
            tail += piece;
            auto at = tail.find("\r\n\r\n");
            if (at == std::string::npos) continue;
            saw_header = true;
            piece = tail.substr(at + 4);
            tail.clear();
        }
        for (char c : piece) body += c == 'x';
        tail = (tail + piece).substr(std::max<std::size_t>(tail.size() + piece.size(), 5) - 5);
        if (tail == "0\r\n\r\n") break;
    }
    EXPECT_EQ(body, static_cast<std::size_t>(kTotal));
    EXPECT_EQ(tail, "0\r\n\r\n");
    auto after = progress(server->port());
    EXPECT_EQ(after["written"], kTotal);
    EXPECT_EQ(after["finished"], 1);
}

TEST(Streaming, AClientThatLeavesStopsTheWriterAndCallsOnDisconnect) {
    auto server = stream_worker_server();
    for (int i = 0; i < 2; ++i) {
        RawClient client(server->port());
        ASSERT_TRUE(client.send(get("/produce?total=1000000000&part=65536")));
        client.read_until("\r\n\r\n", 5s);
        if (i == 0) {
            client.reset();
        }  // else: closed (FIN) by the destructor
    }
    bool stopped = eventually(
        [&] {
            auto values = progress(server->port());
            return values["gone"] == 2 && values["disconnects"] == 2;
        },
        5s);
    auto values = progress(server->port());
    EXPECT_TRUE(stopped) << "gone=" << values["gone"] << " disconnects=" << values["disconnects"];
    EXPECT_EQ(values["finished"], 0);
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

TEST(Streaming, AStreamDroppedUnfinishedIsCutOffSoTheClientCanTell) {
    auto server = stream_worker_server();
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/drop?parts=2")));
    std::string raw = client.read_to_end(5s);
    bool complete = true;
    EXPECT_EQ(dechunk(raw, &complete), "part 0\npart 1\n") << raw;
    EXPECT_FALSE(complete) << "a cut-off stream must not end like a finished one";
    // Without chunks (HTTP/1.0) only a reset tells the client that the body is incomplete.
    RawClient old_client(server->port());
    ASSERT_TRUE(old_client.send(get("/drop?parts=2", "1.0")));
    raw = old_client.read_to_end(5s);
    EXPECT_TRUE(old_client.reset_by_peer()) << raw;
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

TEST(Streaming, AHandlersConnectionCloseIsHonouredForPlainAndStreamedResponses) {
    auto server = stream_worker_server();
    for (const char* target : {"/goodbye", "/produce?total=10&close=1"}) {
        RawClient client(server->port());
        ASSERT_TRUE(client.send(get(target)));
        std::string raw = client.read_to_end(5s);  // ends: the worker closes the connection
        EXPECT_NE(raw.find("Connection: close\r\n"), std::string::npos) << target << ": " << raw;
        EXPECT_EQ(raw.find("Connection: close", raw.find("Connection: close") + 1),
                  std::string::npos)
            << "said twice: " << raw;
        EXPECT_FALSE(client.reset_by_peer()) << target;
    }
}

// A worker stopped at once (QUIT) while a thread of its offload pool waits to write to a
// client that does not read: the writer is told the client is gone, and the worker exits
// instead of waiting for its pool forever.
TEST(Streaming, AWorkerStoppedAtOnceWakesPoolThreadsWaitingOnStreams) {
    auto server = stream_worker_server();
    pid_t worker = server->children().at(0);
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/produce?total=1000000000&part=65536&pool=1")));
    client.read_until("\r\n\r\n", 5s);
    ASSERT_GT(written_once_held_back(server->port()), 0);  // the writer waits for room
    ASSERT_EQ(::kill(worker, SIGQUIT), 0);
    EXPECT_TRUE(wait_until_gone({worker}, 15s)) << "the worker hangs on its offload pool";
}

TEST(Streaming, AsyncWriteCallbacksRunOnTheLoop) {
    auto server = stream_worker_server();
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/async-callbacks")));
    std::string raw = client.read_until("0\r\n\r\n", 5s);
    bool complete = false;
    EXPECT_EQ(dechunk(raw, &complete), "first\non the loop\n") << raw;
    EXPECT_TRUE(complete);
}

TEST(Streaming, BlockingWriteOnTheLoopIsRefused) {
    auto server = stream_worker_server();
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/write-on-loop")));
    std::string raw = client.read_until("Internal Server Error\n", 5s);
    EXPECT_NE(raw.find("500 Internal Server Error"), std::string::npos) << raw;
    EXPECT_NE(server->output().find("use Stream::async_write"), std::string::npos);
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

// Threads write while their clients hang up at random moments: nothing crashes, nothing
// waits forever (run under ThreadSanitizer too).
TEST(Streaming, WritersRacingClientsThatHangUp) {
    auto server = stream_worker_server();
    std::mt19937 random(7);
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int round = 0; round < 10; ++round) {
        for (int i = 0; i < 20; ++i) {
            clients.push_back(std::make_unique<RawClient>(server->port()));
            ASSERT_TRUE(clients.back()->send(
                get("/produce?total=2000000&part=" + std::to_string(1 + random() % 100000))));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 30));
        for (auto& client : clients) {
            if (random() % 2) client->reset();
        }
        clients.clear();
    }
    // Every writer ends: finished, or told that its client is gone.
    bool settled = eventually(
        [&] {
            auto values = progress(server->port());
            return values["finished"] + values["gone"] == 200;
        },
        20s);
    auto values = progress(server->port());
    EXPECT_TRUE(settled) << "finished=" << values["finished"] << " gone=" << values["gone"];
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

// A coroutine handler that takes a Responder: the shortest way to stream from the loop.
std::string coroutines(std::uint16_t port) {
    return http_get(port, "/coroutines").body();
}

TEST(Streaming, ACoroutineHandlerWithAResponderStreamsItsParts) {
    auto server = stream_worker_server();
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/coroutine-stream?parts=3&interval_ms=20")));
    std::string raw = client.read_until("0\r\n\r\n", 5s);
    bool complete = false;
    EXPECT_EQ(dechunk(raw, &complete), "part 1\npart 2\npart 3\n") << raw;
    EXPECT_TRUE(complete);
    // The connection is kept, and the coroutine is gone once it ended.
    ASSERT_TRUE(client.send(get("/coroutines")));
    EXPECT_NE(client.read_until("went_on", 5s).find("running=0 "), std::string::npos);
}

// The client leaves while the coroutine waits an hour between parts: its wait ends at once
// (the frame is gone), and nothing is logged as a handler error.
TEST(Streaming, AClientThatLeavesCancelsTheStreamingCoroutineAtOnce) {
    auto server = stream_worker_server();
    {
        RawClient client(server->port());
        ASSERT_TRUE(client.send(get("/coroutine-stream?parts=2&interval_ms=3600000")));
        client.read_until("part 1\n", 5s);
        EXPECT_EQ(coroutines(server->port()), "running=1 went_on=0");
    }  // hangs up
    EXPECT_TRUE(
        eventually([&] { return coroutines(server->port()) == "running=0 went_on=0"; }, 10s))
        << coroutines(server->port());
    EXPECT_EQ(server->output().find("handler threw"), std::string::npos) << server->output();
}

TEST(Streaming, ACoroutineHandlerThatThrowsBeforeAnsweringGets500AndOneLogLine) {
    auto server = stream_worker_server();
    HttpConnection connection(server->port());
    EXPECT_EQ(connection.get("/coroutine-throws").result_int(), 500u);
    EXPECT_EQ(server->wait_for_lines("handler threw: boom", 1).size(), 1u) << server->output();
    EXPECT_EQ(server->output().find("dropped its Responder"), std::string::npos)
        << server->output();
    EXPECT_EQ(connection.get("/").body(), "ok");  // the connection is kept
}

TEST(Streaming, ACoroutineHandlerThatThrowsWhileStreamingCutsTheResponseOff) {
    auto server = stream_worker_server();
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/coroutine-throws?parts=2")));
    std::string raw = client.read_to_end(5s);
    bool complete = true;
    EXPECT_EQ(dechunk(raw, &complete), "part 1\npart 2\n") << raw;
    EXPECT_FALSE(complete) << "a stream whose handler threw must not end like a finished one";
    EXPECT_EQ(server->wait_for_lines("handler threw: boom", 1).size(), 1u) << server->output();
}

TEST(Streaming, ACoroutineHandlerMayGoOnAfterItAnswered) {
    auto server = stream_worker_server();
    HttpConnection connection(server->port());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(connection.get("/coroutine-goes-on").body(), "sent");
    // The next request on the connection does not wait for, nor cut short, the first ones.
    EXPECT_TRUE(
        eventually([&] { return coroutines(server->port()) == "running=0 went_on=3"; }, 10s))
        << coroutines(server->port());
}

TEST(Streaming, ACoroutineHandlerThatEndsWithoutAnsweringGets500) {
    auto server = stream_worker_server();
    EXPECT_EQ(http_get(server->port(), "/coroutine-silent").result_int(), 500u);
    EXPECT_EQ(server->wait_for_lines("dropped its Responder without sending", 1).size(), 1u);
}

// The handler timeout ends a coroutine that has not answered: 503, and its frame is gone.
TEST(Streaming, TheHandlerTimeoutCancelsACoroutineThatHasNotAnswered) {
    auto server = PreforkServer::with_worker(Loopback{1, {"--env", "PREFORK_HANDLER_TIMEOUT=0.3"}},
                                             {STREAM_WORKER_BINARY});
    EXPECT_EQ(http_get(server->port(), "/coroutine-slow?ms=3600000").result_int(), 503u);
    EXPECT_TRUE(
        eventually([&] { return coroutines(server->port()) == "running=0 went_on=0"; }, 10s))
        << coroutines(server->port());
    EXPECT_EQ(http_get(server->port(), "/coroutine-slow?ms=10").body(), "late");
    EXPECT_EQ(server->output().find("handler threw"), std::string::npos) << server->output();
}

}  // namespace
}  // namespace prefork::testing

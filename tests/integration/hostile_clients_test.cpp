// One hostile or slow client costs the worker nothing: each promise of the worker's
// timeouts, budgets and responses, proved with the client that would break it. The server
// side of a connection is observed in the kernel's own table (/proc/net/tcp): its state,
// its queues and its timer.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "raw_client.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

using Clock = std::chrono::steady_clock;

// --- clients ----------------------------------------------------------------------------

// A response as it came over the wire.
struct RawResponse {
    int status = 0;    // 0: no complete head arrived
    std::string head;  // the status line and the fields, through the blank line
    std::string body;

    // The value of a field ("" when absent); names compare case-insensitively.
    std::string header(const std::string& name) const {
        auto lower = [](std::string text) {
            std::transform(text.begin(), text.end(), text.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            return text;
        };
        std::string lowered = lower(head);
        auto at = lowered.find("\r\n" + lower(name) + ":");
        if (at == std::string::npos) return {};
        at += name.size() + 3;
        while (at < head.size() && head[at] == ' ') ++at;
        return head.substr(at, head.find("\r\n", at) - at);
    }
};

// The head of `raw`, and its body so far.
RawResponse parse_response(const std::string& raw) {
    RawResponse response;
    auto end = raw.find("\r\n\r\n");
    if (end == std::string::npos || raw.size() < 12) {
        response.head = raw;
        return response;
    }
    response.head = raw.substr(0, end + 4);
    response.body = raw.substr(end + 4);
    response.status = std::stoi(raw.substr(9, 3));
    return response;
}

// Whether `raw` holds a whole response framed by Content-Length.
bool has_whole_response(const std::string& raw) {
    RawResponse response = parse_response(raw);
    if (response.status == 0) return false;
    std::string length = response.header("Content-Length");
    return !length.empty() && response.body.size() >= std::stoull(length);
}

// Reads one response framed by Content-Length (or, with `head_only`, just its head).
RawResponse read_response(RawClient& client, std::chrono::milliseconds timeout,
                          std::string seen = {}, bool head_only = false) {
    auto deadline = Clock::now() + timeout;
    std::string raw = client.read_until("\r\n\r\n", timeout, std::move(seen));
    while (!head_only && parse_response(raw).status != 0 && !has_whole_response(raw) &&
           Clock::now() < deadline) {
        bool eof = false;
        raw += client.read_some(100ms, &eof);
        if (eof) break;
    }
    return parse_response(raw);
}

// Reads at about `bytes_per_second` (a little ahead at first) until `done` says the
// response is all here, the server closes, or `timeout` passes.
std::string read_slowly(RawClient& client, double bytes_per_second,
                        const std::function<bool(const std::string&)>& done,
                        std::chrono::milliseconds timeout) {
    std::string data;
    auto started = Clock::now();
    for (auto deadline = started + timeout; Clock::now() < deadline && !done(data);) {
        double allowed = 16384 + bytes_per_second *
                                     std::chrono::duration<double>(Clock::now() - started).count();
        if (static_cast<double>(data.size()) >= allowed) {
            std::this_thread::sleep_for(5ms);
            continue;
        }
        auto want = static_cast<std::size_t>(allowed - static_cast<double>(data.size()));
        bool eof = false;
        data += client.read_some(100ms, &eof, std::max<std::size_t>(want, 1));
        if (eof) break;
    }
    return data;
}

// Sends `data` as the server takes it while watching for an answer; stops sending once a
// response head has arrived (or the server closed). Returns what arrived.
std::string send_until_answered(RawClient& client, const std::string& data,
                                std::chrono::milliseconds timeout) {
    std::string seen;
    std::size_t sent = 0;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
        if (sent < data.size()) {
            sent += client.send_some(std::string_view(data).substr(sent, 65536));
        }
        bool eof = false;
        seen += client.read_some(sent < data.size() ? 2ms : 100ms, &eof);
        if (eof || seen.find("\r\n\r\n") != std::string::npos) break;
    }
    return seen;
}

bool chunked_response_ended(const std::string& raw) {
    return raw.size() >= 7 && raw.compare(raw.size() - 7, 7, "\r\n0\r\n\r\n") == 0;
}

// `size` bytes that are not all alike, so a byte out of place shows.
std::string pattern(std::size_t size, unsigned seed = 1) {
    std::mt19937 random(seed);
    std::string bytes(size, '\0');
    for (auto& byte : bytes) byte = static_cast<char>('a' + random() % 26);
    return bytes;
}

// --- the server and what the kernel knows of it --------------------------------------------

// `--env NAME=VALUE` for each setting: the worker's settings.
std::vector<std::string> env_flags(const std::vector<std::string>& settings) {
    std::vector<std::string> flags;
    for (const auto& setting : settings) {
        flags.push_back("--env");
        flags.push_back(setting);
    }
    return flags;
}

// The master with one demo worker, the worker's settings from `env_settings`.
PreforkServer one_demo_worker(const std::vector<std::string>& env_settings = {},
                              std::vector<std::string> extra_env = {}) {
    return PreforkServer(
        Loopback{.workers = 1, .args = env_flags(env_settings), .env = std::move(extra_env)});
}

std::unique_ptr<PreforkServer> one_response_worker(
    const std::vector<std::string>& env_settings = {}) {
    return PreforkServer::with_worker(Loopback{1, env_flags(env_settings)},
                                      {RESPONSE_WORKER_BINARY});
}

// Under AddressSanitizer freed memory waits in a quarantine first: without one, a worker's
// memory can be measured.
std::string measurable_memory() {
    const char* asan = std::getenv("ASAN_OPTIONS");
    return std::string("ASAN_OPTIONS=") + (asan ? asan : "") + ":quarantine_size_mb=0";
}

// One IPv4 TCP socket of /proc/net/tcp.
struct TcpSocket {
    std::uint16_t local_port = 0, remote_port = 0;
    int state = 0;                    // 1 established, 4 FIN-WAIT-1, ... (include/net/tcp_states.h)
    std::uint64_t send_queue = 0;     // written by the application, not yet acknowledged
    std::uint64_t receive_queue = 0;  // arrived, not yet read by the application
    int timer = 0;                    // 0 none, 1 retransmit, 2 keepalive, 4 zero window probe
    double timer_seconds = 0;         // until that timer fires
};

std::vector<TcpSocket> tcp_sockets() {
    std::vector<TcpSocket> sockets;
    std::istringstream lines(read_text_file("/proc/net/tcp"));
    std::string line;
    std::getline(lines, line);  // the column names
    double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    auto hex = [](const std::string& text) { return std::stoull(text, nullptr, 16); };
    auto after_colon = [](const std::string& text) { return text.substr(text.find(':') + 1); };
    auto before_colon = [](const std::string& text) { return text.substr(0, text.find(':')); };
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer;
        if (!(fields >> slot >> local >> remote >> state >> queues >> timer)) continue;
        TcpSocket socket;
        socket.local_port = static_cast<std::uint16_t>(hex(after_colon(local)));
        socket.remote_port = static_cast<std::uint16_t>(hex(after_colon(remote)));
        socket.state = static_cast<int>(hex(state));
        socket.send_queue = hex(before_colon(queues));
        socket.receive_queue = hex(after_colon(queues));
        socket.timer = static_cast<int>(hex(before_colon(timer)));
        socket.timer_seconds = static_cast<double>(hex(after_colon(timer))) / ticks;
        sockets.push_back(socket);
    }
    return sockets;
}

constexpr int kEstablished = 1;

// The server's end of the connection from `client_port` to `server_port`; nullopt once the
// kernel has forgotten it.
std::optional<TcpSocket> server_end(std::uint16_t server_port, std::uint16_t client_port) {
    for (const TcpSocket& socket : tcp_sockets()) {
        if (socket.local_port == server_port && socket.remote_port == client_port) return socket;
    }
    return std::nullopt;
}

// Waits until the server has read every byte the client sent so far.
bool wait_until_server_read_all(std::uint16_t server_port, const RawClient& client,
                                std::chrono::milliseconds timeout) {
    return eventually(
        [&] {
            auto end = server_end(server_port, client.local_port());
            return end && end->receive_queue == 0;
        },
        timeout);
}

// Waits until the server has closed its end of the connection (it is no longer
// established: FIN-WAIT with what it had queued, or gone).
bool wait_until_server_closed(std::uint16_t server_port, const RawClient& client,
                              std::chrono::milliseconds timeout) {
    return eventually(
        [&] {
            auto end = server_end(server_port, client.local_port());
            return !end || end->state != kEstablished;
        },
        timeout);
}

std::string post_head(const std::string& target, std::uint64_t content_length,
                      const std::string& extra_fields = "") {
    return "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n" +
           "Content-Length: " + std::to_string(content_length) + "\r\n" + extra_fields + "\r\n";
}

std::string get(const std::string& target, const std::string& extra_fields = "",
                const std::string& method = "GET") {
    return method + " " + target + " HTTP/1.1\r\nHost: x\r\n" + extra_fields + "\r\n";
}

// A refusal says Connection: close, and the server then ends the connection.
void expect_closed_after(RawClient& client, const RawResponse& response) {
    EXPECT_EQ(response.header("Connection"), "close") << response.head;
    bool closed = false;
    client.read_to_end(5s, &closed);
    EXPECT_TRUE(closed) << "the connection stayed open after the " << response.status;
}

// --- the header and body timeouts -----------------------------------------------------------

// A client that dribbles its head cannot stretch the header timeout: it runs from the
// request's first byte, not from each byte, and the idle time before it does not count.
TEST(HostileClients, TheHeaderTimeoutRunsFromARequestsFirstByteToTheEndOfItsHead) {
    auto server = one_demo_worker({"PREFORK_HEADER_TIMEOUT=2", "PREFORK_IDLE_TIMEOUT=10"});
    RawClient client(server.port());
    std::this_thread::sleep_for(1s);  // connected and silent: idle time, not header time
    const std::string head = get("/", "X-Slow: " + std::string(40, 's') + "\r\n");
    auto first_byte = Clock::now();
    std::string answer;
    bool closed = false;
    // One byte every 0.5 s (the whole head would take 40 s), until the server answers.
    for (std::size_t i = 0;
         i < head.size() && answer.empty() && !closed && Clock::now() - first_byte < 8s; ++i) {
        client.send(head.substr(i, 1));
        answer = client.read_some(500ms, &closed);
    }
    auto answered_after = Clock::now() - first_byte;
    RawResponse response = read_response(client, 5s, answer);
    EXPECT_EQ(response.status, 408) << response.head;
    EXPECT_GT(answered_after, 1500ms) << "the header timeout ran before the first byte";
    EXPECT_LT(answered_after, 6s) << "each byte moved the header timeout";
    expect_closed_after(client, response);
}

// The body timeout is one of inactivity: an upload that keeps coming, slowly, takes as long
// as it takes, past both the header and the body timeout.
TEST(HostileClients, ASteadySlowUploadSucceedsThoughItTakesLongerThanEveryTimeout) {
    auto server = one_demo_worker({"PREFORK_HEADER_TIMEOUT=1", "PREFORK_BODY_TIMEOUT=1"});
    const std::string body = pattern(300'000);
    RawClient client(server.port());
    ASSERT_TRUE(client.send(post_head("/echo", body.size())));
    auto started = Clock::now();
    constexpr std::size_t kPiece = 10'000;  // every 100 ms: about 100 KB/s, 3 s in all
    for (std::size_t sent = 0, n = 0; sent < body.size(); sent += kPiece, ++n) {
        std::this_thread::sleep_until(started + n * 100ms);  // on a schedule, not drifting
        ASSERT_TRUE(client.send(std::string_view(body).substr(sent, kPiece)))
            << "the server gave up after " << sent << " bytes";
    }
    EXPECT_GT(Clock::now() - started, 2500ms);
    RawResponse response = read_response(client, 10s);
    EXPECT_EQ(response.status, 200) << response.head;
    EXPECT_EQ(response.body.size(), body.size());
    EXPECT_TRUE(response.body == body) << "the echo differs from the upload";
}

TEST(HostileClients, AnUploadThatStopsHalfwayGets408ABodyTimeoutAfterItsLastByte) {
    auto server = one_demo_worker({"PREFORK_HEADER_TIMEOUT=1", "PREFORK_BODY_TIMEOUT=1"});
    RawClient client(server.port());
    ASSERT_TRUE(client.send(post_head("/echo", 300'000) + pattern(150'000)));
    auto last_byte = Clock::now();
    RawResponse response = read_response(client, 10s);
    auto after = Clock::now() - last_byte;
    EXPECT_EQ(response.status, 408) << response.head;
    EXPECT_GT(after, 800ms) << "answered before the body timeout";
    EXPECT_LT(after, 5s) << "not the 1 s body timeout";
    expect_closed_after(client, response);
}

// --- the write timeout: inactivity, not a deadline ----------------------------------------

// The responses are larger than what the kernel's buffers on the server's side take (its
// send buffer grows to tcp_wmem's maximum, 4 MB by default), so that the worker's own
// writes outlast the write timeout: a response the kernel takes whole proves nothing.
constexpr std::size_t kBeyondTheKernelsBuffers = 6'000'000;

TEST(HostileClients, ASlowSteadyReaderOfALargeStreamedResponseGetsAllOfIt) {
    auto server = one_demo_worker({"PREFORK_WRITE_TIMEOUT=1"});
    RawClient client(server.port(), 16384);
    ASSERT_TRUE(client.send(get("/bytes?n=" + std::to_string(kBeyondTheKernelsBuffers))));
    auto started = Clock::now();
    std::string raw = read_slowly(client, 1'000'000, chunked_response_ended, 20s);  // ~6 s
    auto took = Clock::now() - started;
    bool complete = false;
    std::string body = dechunk(raw, &complete);
    EXPECT_EQ(parse_response(raw).status, 200) << parse_response(raw).head;
    EXPECT_EQ(body.size(), kBeyondTheKernelsBuffers);
    EXPECT_EQ(body.find_first_not_of('x'), std::string::npos);
    EXPECT_TRUE(complete) << "the response was cut off after " << body.size() << " bytes, "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                          << " ms" << (client.reset_by_peer() ? ", by a reset" : "") << "\n"
                          << server.output();
    EXPECT_GT(took, 3s) << "not a slow reader: the test proves nothing";
}

TEST(HostileClients, ASlowSteadyReaderOfALargePlainResponseGetsAllOfIt) {
    auto server = one_demo_worker({"PREFORK_WRITE_TIMEOUT=1"});
    const std::string body = pattern(kBeyondTheKernelsBuffers, 2);
    RawClient client(server.port(), 16384);
    ASSERT_TRUE(client.send(post_head("/echo", body.size()) + body));
    auto started = Clock::now();
    std::string raw = read_slowly(client, 1'000'000, has_whole_response, 20s);  // ~6 s
    auto took = Clock::now() - started;
    RawResponse response = parse_response(raw);
    EXPECT_EQ(response.status, 200) << response.head;
    EXPECT_EQ(response.body.size(), body.size())
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n"
        << server.output();
    EXPECT_TRUE(response.body == body) << "the echo differs from the upload";
    EXPECT_GT(took, 3s) << "not a slow reader: the test proves nothing";
}

// A client that stops reading is let go a write timeout after the last progress: for a
// streamed response and for a plain one.
TEST(HostileClients, AClientThatStopsReadingIsLetGoAfterTheWriteTimeout) {
    auto server = one_demo_worker({"PREFORK_WRITE_TIMEOUT=1"});
    struct Case {
        std::string name, request;
    };
    for (const Case& stalled : {Case{"streamed", get("/bytes?n=50000000")},
                                Case{"plain", post_head("/echo", kBeyondTheKernelsBuffers) +
                                                  pattern(kBeyondTheKernelsBuffers)}}) {
        RawClient client(server.port(), 4096);
        ASSERT_TRUE(client.send(stalled.request)) << stalled.name;
        auto sent = Clock::now();
        EXPECT_TRUE(wait_until_server_closed(server.port(), client, 15s))
            << stalled.name << ": the worker kept the stalled connection";
        auto after = Clock::now() - sent;
        EXPECT_GT(after, 800ms) << stalled.name << ": let go before the write timeout";
        EXPECT_LT(after, 10s) << stalled.name;
    }
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!") << "the worker serves on";
}

// --- bodies are not read before routing ----------------------------------------------------

TEST(HostileClients, BodiesForAPathThatDoesNotExistAreNeitherReadNorAwaited) {
    auto server = one_demo_worker({}, {measurable_memory()});
    pid_t worker = server.children().at(0);
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");  // warm up
    auto before = resident_kib(worker);

    constexpr int kClients = 40;
    constexpr std::size_t kSent = 1 << 20;  // of the 8 MB each announces
    const std::string piece(65536, 'b');
    std::vector<std::unique_ptr<RawClient>> clients;
    std::vector<std::string> answers(kClients);
    std::vector<std::size_t> sent(kClients, 0);
    for (int i = 0; i < kClients; ++i) {
        clients.push_back(std::make_unique<RawClient>(server.port()));
        ASSERT_TRUE(clients.back()->send(post_head("/does-not-exist", 8'000'000)));
    }
    // Each pushes its megabyte at the server (as fast as the kernel takes it) while watching
    // for the answer, which must not wait for the rest.
    auto answered = [&](int i) { return answers[i].find("\r\n\r\n") != std::string::npos; };
    for (auto deadline = Clock::now() + 15s; Clock::now() < deadline;) {
        bool done = true;
        for (int i = 0; i < kClients; ++i) {
            if (sent[i] < kSent) {
                sent[i] += clients[i]->send_some(
                    std::string_view(piece).substr(0, std::min(piece.size(), kSent - sent[i])));
            }
            if (!answered(i)) answers[i] += clients[i]->read_some(0ms);
            done = done && answered(i) && (sent[i] == kSent || clients[i]->send_failed());
        }
        if (done) break;
        std::this_thread::sleep_for(1ms);
    }
    auto after = resident_kib(worker);  // the connections are all still open
    for (int i = 0; i < kClients; ++i) {
        RawResponse response = parse_response(answers[i]);
        EXPECT_EQ(response.status, 404) << "client " << i << ": " << answers[i];
        EXPECT_EQ(response.header("Connection"), "close") << "client " << i;
    }
    EXPECT_LT(after, before + 30 * 1024) << "RSS " << before << " KiB before, " << after
                                         << " KiB with " << kClients << " refused uploads open";
    clients.clear();
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!");
}

// 100 Continue is the server's promise to read the body: made only to a request that has a
// route and fits the limits.
TEST(HostileClients, ExpectContinueIsAnsweredOnlyForARequestThatWillBeRead) {
    auto server = one_demo_worker({"PREFORK_BODY_LIMIT=1000"});
    const std::string expect = "Expect: 100-continue\r\n";
    {
        RawClient client(server.port());
        ASSERT_TRUE(client.send(post_head("/does-not-exist", 500, expect)));
        RawResponse response = read_response(client, 5s);
        EXPECT_EQ(response.status, 404) << response.head;
        EXPECT_EQ(response.header("Connection"), "close");
        std::string rest = client.read_to_end(5s);
        EXPECT_EQ((response.head + response.body + rest).find("100 Continue"), std::string::npos);
    }
    {
        RawClient client(server.port());
        ASSERT_TRUE(client.send(post_head("/echo", 5000, expect)));
        RawResponse response = read_response(client, 5s);
        EXPECT_EQ(response.status, 413) << response.head;
        EXPECT_EQ((response.head + client.read_to_end(5s)).find("100 Continue"), std::string::npos);
    }
    RawClient client(server.port());
    ASSERT_TRUE(client.send(post_head("/echo", 5, expect)));
    EXPECT_EQ(client.read_until("\r\n\r\n", 5s), "HTTP/1.1 100 Continue\r\n\r\n");
    ASSERT_TRUE(client.send("hello"));
    RawResponse response = read_response(client, 5s);
    EXPECT_EQ(response.status, 200) << response.head;
    EXPECT_EQ(response.body, "hello");
}

// --- the worker's body budget --------------------------------------------------------------

// An upload, announced by Content-Length or sent in chunks, and the answer to it.
RawResponse upload(std::uint16_t port, const std::string& body, bool chunked) {
    RawClient client(port);
    std::string request;
    if (chunked) {
        request =
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n";
        for (std::size_t at = 0; at < body.size(); at += 10'000) {
            std::string part = body.substr(at, 10'000);
            std::ostringstream size;
            size << std::hex << part.size();
            request += size.str() + "\r\n" + part + "\r\n";
        }
        request += "0\r\n\r\n";
    } else {
        request = post_head("/echo", body.size()) + body;
    }
    return read_response(client, 10s, send_until_answered(client, request, 10s));
}

TEST(HostileClients, UploadsBeyondTheWorkersBodyBudgetGet503UntilItHasRoom) {
    auto server =
        one_demo_worker({"PREFORK_BODY_BUFFER_LIMIT=1000000", "PREFORK_BODY_LIMIT=800000"});
    const std::string body = pattern(600'000, 3);
    // The first upload's head and a part of its body: 600000 bytes of the budget are its.
    RawClient first(server.port());
    ASSERT_TRUE(first.send(post_head("/echo", body.size()) + body.substr(0, 100'000)));
    ASSERT_TRUE(wait_until_server_read_all(server.port(), first, 10s));

    {  // a second one does not fit: 503 from its head, and the connection closes
        RawClient second(server.port());
        ASSERT_TRUE(second.send(post_head("/echo", body.size())));
        RawResponse response = read_response(second, 10s);
        EXPECT_EQ(response.status, 503) << response.head;
        expect_closed_after(second, response);
    }
    {  // nor does a chunked one, once what it has sent passes what is left
        RawResponse response = upload(server.port(), body, true);
        EXPECT_EQ(response.status, 503) << response.head;
        EXPECT_EQ(response.header("Connection"), "close");
    }

    ASSERT_TRUE(first.send(std::string_view(body).substr(100'000)));
    RawResponse response = read_response(first, 10s);
    EXPECT_EQ(response.status, 200) << response.head;
    EXPECT_TRUE(response.body == body) << "the first upload's echo differs";

    // Its share given back, a new upload of the same size fits. (The budget is freed once
    // the answer is written, which the client may see a moment before the worker does.)
    for (bool chunked : {false, true}) {
        RawResponse again;
        eventually(
            [&] {
                again = upload(server.port(), body, chunked);
                return again.status != 503;
            },
            5s);
        EXPECT_EQ(again.status, 200) << (chunked ? "chunked: " : "") << again.head;
        EXPECT_TRUE(again.body == body) << (chunked ? "chunked" : "by length");
    }
}

// --- many slow readers ---------------------------------------------------------------------

// Each response is larger than what the kernel takes on the server's side of a socket
// (about 3.6 MB of a send buffer that grows to tcp_wmem's 4 MB): the rest is the worker's
// to hold back. A worker that held whole bodies would hold over 4 MB per client.
TEST(HostileClients, TwoHundredClientsThatDoNotReadALargeStreamedResponseCostBoundedMemory) {
    auto server = one_demo_worker({}, {measurable_memory()});
    pid_t worker = server.children().at(0);
    EXPECT_EQ(http_get(server.port(), "/bytes?n=1048576").body().size(), 1048576u);  // warm up
    auto before = resident_kib(worker);

    constexpr std::uint64_t kBytes = 8 << 20;
    const std::string request = get("/bytes?n=" + std::to_string(kBytes));
    constexpr int kClients = 200;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.push_back(std::make_unique<RawClient>(server.port(), 4096));
        ASSERT_TRUE(clients.back()->send(request));
    }
    for (int i = 0; i < kClients; ++i) {  // each is answered: its head (and a little more)
        std::string head = clients[i]->read_until("\r\n\r\n", 10s);
        ASSERT_EQ(parse_response(head).status, 200) << "client " << i << ": " << head;
    }
    // The worker has written what the sockets take: every server end holds unsent bytes, and
    // neither those nor the worker's memory change any more.
    std::vector<std::uint16_t> ports;
    for (auto& client : clients) ports.push_back(client->local_port());
    std::sort(ports.begin(), ports.end());
    std::uint64_t queued = 0, resident = 0;
    auto stable_since = Clock::now();
    bool settled = eventually(
        [&] {
            std::uint64_t queued_now = 0;
            int stuck = 0;
            for (const TcpSocket& socket : tcp_sockets()) {
                if (socket.local_port != server.port() ||
                    !std::binary_search(ports.begin(), ports.end(), socket.remote_port))
                    continue;
                queued_now += socket.send_queue;
                stuck += socket.send_queue > 0;
            }
            std::uint64_t resident_now = resident_kib(worker);
            if (stuck < kClients || queued_now != queued || resident_now != resident) {
                queued = queued_now;
                resident = resident_now;
                stable_since = Clock::now();
                return false;
            }
            return Clock::now() - stable_since >= 500ms;
        },
        15s);
    EXPECT_TRUE(settled) << "the worker's writes did not settle";
    EXPECT_LT(queued, kClients * (kBytes - (1 << 20)))
        << "the kernel took (nearly) every response whole: the worker held nothing back";
    auto after = resident_kib(worker);
    EXPECT_LT(after, before + 60 * 1024) << "RSS " << before << " KiB before, " << after
                                         << " KiB with " << kClients << " stalled 8 MB responses";
    for (int i = 0; i < kClients; i += 2) clients[i]->reset();
    clients.clear();
    EXPECT_EQ(http_get(server.port(), "/").body(), "Hello, World!") << "the worker serves on";
}

// --- responses a handler cannot split ------------------------------------------------------

TEST(HostileHandlers, AHeaderThatCouldSplitTheResponseGets500AndALogLine) {
    auto server = one_response_worker();
    // Through set_header (or a content type) the handler is stopped at once; through
    // message() the worker finds the field only as it writes the head.
    struct Case {
        std::string target, logged;
    };
    const std::string through_message = "the handler's response has a header holding CR, LF or NUL";
    for (const Case& bad : {
             Case{"/header-crlf", "the value of header X-Injected holds CR, LF or NUL"},
             Case{"/header-bad-name", "header name \"Bad Name\" is not a token"},
             Case{"/content-type-crlf", "CR, LF or NUL"},
             Case{"/message-crlf", through_message},
             Case{"/message-bad-name", through_message},
         }) {
        auto logged_before = server->wait_for_lines(bad.logged, 0, 0ms).size();
        RawClient client(server->port());
        ASSERT_TRUE(client.send(get(bad.target)));
        RawResponse response = read_response(client, 5s);
        EXPECT_EQ(response.status, 500) << bad.target << ": " << response.head;
        std::string everything = response.head + response.body + client.read_some(200ms);
        EXPECT_EQ(everything.find("X-Forged"), std::string::npos)
            << bad.target << ": " << everything;
        EXPECT_EQ(everything.find("never sent"), std::string::npos) << bad.target;
        EXPECT_EQ(everything.find("Bad Name"), std::string::npos) << bad.target;
        EXPECT_GT(server->wait_for_lines(bad.logged, logged_before + 1, 5s).size(), logged_before)
            << bad.target << ": no line naming the problem in\n"
            << server->output();
    }
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

// A streamed response's head is checked as well: nothing forged reaches the client.
TEST(HostileHandlers, AStreamHeadThatCouldSplitTheResponseIsNeverSent) {
    auto server = one_response_worker();
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/stream-head-crlf")));
    bool closed = false;
    std::string raw = client.read_to_end(5s, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(raw.find("X-Forged"), std::string::npos) << raw;
    EXPECT_EQ(raw.find("never sent"), std::string::npos) << raw;
    // Nothing was written yet, so the client is told.
    EXPECT_TRUE(raw.starts_with("HTTP/1.1 500")) << raw;
    EXPECT_EQ(server->wait_for_lines("stream head has a header", 1, 5s).size(), 1u)
        << server->output();
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

// --- Response::file ------------------------------------------------------------------------

// A temporary file with known content, removed at the end of the test.
class TemporaryFile {
  public:
    explicit TemporaryFile(const std::string& content) : content_(content) {
        char path[] = "/tmp/prefork-hostile-file-XXXXXX";
        int fd = ::mkstemp(path);
        if (fd < 0) throw std::runtime_error("mkstemp failed");
        ::close(fd);
        path_ = path;
        std::ofstream(path_, std::ios::binary) << content_;
    }
    ~TemporaryFile() { ::unlink(path_.c_str()); }
    const std::string& path() const { return path_; }
    const std::string& content() const { return content_; }
    std::string size() const { return std::to_string(content_.size()); }

  private:
    std::string path_, content_;
};

TEST(HostileClients, AFileIsServedWholeOrByOneRange) {
    auto server = one_response_worker();
    TemporaryFile file(pattern(3'000'000, 4));
    const std::string& content = file.content();
    const std::string target = "/file?path=" + file.path();
    RawClient client(server->port());  // one keep-alive connection for all of them
    auto ask = [&](const std::string& fields, const std::string& method = "GET") {
        EXPECT_TRUE(client.send(get(target, fields, method)));
        return read_response(client, 10s, {}, method == "HEAD");
    };

    RawResponse whole = ask("");
    EXPECT_EQ(whole.status, 200) << whole.head;
    EXPECT_EQ(whole.header("Content-Length"), file.size());
    EXPECT_EQ(whole.header("Accept-Ranges"), "bytes");
    EXPECT_TRUE(whole.body == content) << "the file arrived changed";

    RawResponse first = ask("Range: bytes=0-99\r\n");
    EXPECT_EQ(first.status, 206) << first.head;
    EXPECT_EQ(first.header("Content-Range"), "bytes 0-99/" + file.size());
    EXPECT_EQ(first.header("Content-Length"), "100");
    EXPECT_EQ(first.body, content.substr(0, 100));

    RawResponse last = ask("Range: bytes=-10\r\n");
    EXPECT_EQ(last.status, 206) << last.head;
    EXPECT_EQ(last.header("Content-Range"), "bytes 2999990-2999999/" + file.size());
    EXPECT_EQ(last.body, content.substr(content.size() - 10));

    RawResponse past = ask("Range: bytes=" + file.size() + "-\r\n");
    EXPECT_EQ(past.status, 416) << past.head;
    EXPECT_EQ(past.header("Content-Range"), "bytes */" + file.size());
    EXPECT_EQ(past.header("Content-Length"), "0");

    RawResponse several = ask("Range: bytes=0-1,5-6\r\n");
    EXPECT_EQ(several.status, 200) << several.head;
    EXPECT_TRUE(several.body == content) << "several ranges: not the whole file";

    RawResponse head = ask("", "HEAD");
    EXPECT_EQ(head.status, 200) << head.head;
    EXPECT_EQ(head.header("Content-Length"), file.size());
    EXPECT_EQ(head.header("Accept-Ranges"), "bytes");
    EXPECT_EQ(head.body, "");
    // Nothing of a body followed the HEAD's head: the next answer comes right after it.
    ASSERT_TRUE(client.send(get("/")));
    RawResponse next = read_response(client, 5s);
    EXPECT_EQ(next.status, 200) << next.head;
    EXPECT_EQ(next.body, "ok");

    ASSERT_TRUE(client.send(get("/file?path=/nonexistent/prefork-hostile-file")));
    EXPECT_EQ(read_response(client, 5s).status, 404);
}

// sendfile under backpressure, for longer than the write timeout.
TEST(HostileClients, ASlowReaderOfAFileGetsItIntact) {
    auto server = one_response_worker({"PREFORK_WRITE_TIMEOUT=1"});
    TemporaryFile file(pattern(kBeyondTheKernelsBuffers, 5));
    RawClient client(server->port(), 16384);
    ASSERT_TRUE(client.send(get("/file?path=" + file.path())));
    auto started = Clock::now();
    std::string raw = read_slowly(client, 1'000'000, has_whole_response, 20s);  // ~6 s
    auto took = Clock::now() - started;
    RawResponse response = parse_response(raw);
    EXPECT_EQ(response.status, 200) << response.head;
    EXPECT_EQ(response.body.size(), file.content().size())
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n"
        << server->output();
    EXPECT_TRUE(response.body == file.content()) << "the file arrived changed";
    EXPECT_GT(took, 3s) << "not a slow reader: the test proves nothing";
}

TEST(HostileClients, ClientsThatHangUpMidFileHurtNothing) {
    auto server = one_response_worker();
    pid_t worker = server->children().at(0);
    TemporaryFile file(pattern(kBeyondTheKernelsBuffers, 6));  // still being sent as they leave
    for (int i = 0; i < 10; ++i) {
        RawClient quitter(server->port(), 16384);
        ASSERT_TRUE(quitter.send(get("/file?path=" + file.path())));
        std::string seen = quitter.read_until("\r\n\r\n", 5s);
        ASSERT_EQ(parse_response(seen).status, 200) << seen;
        if (i % 2) quitter.reset();  // else: a FIN, from the destructor
    }
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/file?path=" + file.path())));
    RawResponse response = read_response(client, 10s);
    EXPECT_TRUE(response.body == file.content()) << "the file arrived changed";
    EXPECT_EQ(server->children(), std::vector<pid_t>{worker}) << server->output();
    EXPECT_EQ(server->wait_for_lines("; replacing it", 1, 0ms).size(), 0u) << server->output();
    // A client that leaves is normal, not a file that cannot be read.
    EXPECT_EQ(server->wait_for_lines("sendfile:", 1, 0ms).size(), 0u)
        << "a client's hang-up logged as an error:\n"
        << server->output();
}

// --- a stream that goes quiet --------------------------------------------------------------

TEST(HostileHandlers, AStreamThatGoesQuietIsCutOffAfterItsIdleTimeout) {
    auto server = one_response_worker();  // the write timeout stays at its 30 s
    RawClient client(server->port());
    ASSERT_TRUE(client.send(get("/quiet-stream?idle_ms=500")));
    std::string raw = client.read_until("first part\n", 5s);
    ASSERT_NE(raw.find("first part\n"), std::string::npos) << raw;
    auto first_part = Clock::now();
    bool closed = false;
    raw += client.read_to_end(15s, &closed);
    auto after = Clock::now() - first_part;
    EXPECT_TRUE(closed) << "the quiet stream was not cut off";
    EXPECT_GT(after, 300ms) << "cut off before its idle timeout";
    EXPECT_LT(after, 5s) << "not the 500 ms idle timeout";
    bool complete = true;
    EXPECT_EQ(dechunk(raw, &complete), "first part\n") << raw;
    EXPECT_FALSE(complete) << "a cut-off stream must not end like a finished one";
    EXPECT_TRUE(client.reset_by_peer()) << "closed in order, as if complete";
    EXPECT_EQ(server->wait_for_lines("wrote nothing for 500 ms", 1, 5s).size(), 1u)
        << server->output();
    EXPECT_EQ(http_get(server->port(), "/").body(), "ok");
}

// --- TCP keepalive -------------------------------------------------------------------------

// The seconds until the keepalive timer of the server's end of a keep-alive connection
// fires (waiting until the response's segments are acknowledged and the connection idles).
std::optional<double> keepalive_timer(std::uint16_t server_port, std::uint16_t client_port) {
    std::optional<double> seconds;
    eventually(
        [&] {
            auto end = server_end(server_port, client_port);
            if (end && end->state == kEstablished && end->timer == 2) seconds = end->timer_seconds;
            return seconds.has_value();
        },
        10s);
    return seconds;
}

TEST(HostileClients, AcceptedConnectionsProbeAVanishedClientWithTcpKeepalive) {
    auto server = one_demo_worker();
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get("/")));
    EXPECT_EQ(read_response(client, 5s).body, "Hello, World!");
    auto seconds = keepalive_timer(server.port(), client.local_port());
    ASSERT_TRUE(seconds.has_value()) << "no keepalive timer on the server's end";
    EXPECT_GT(*seconds, 45);  // the default idle time, 60 s
    EXPECT_LE(*seconds, 60);
}

TEST(HostileClients, TheTcpKeepaliveIdleTimeIsASetting) {
    auto server = one_demo_worker({"PREFORK_TCP_KEEPALIVE=30"});
    RawClient client(server.port());
    ASSERT_TRUE(client.send(get("/")));
    EXPECT_EQ(read_response(client, 5s).body, "Hello, World!");
    auto seconds = keepalive_timer(server.port(), client.local_port());
    ASSERT_TRUE(seconds.has_value()) << "no keepalive timer on the server's end";
    EXPECT_GT(*seconds, 20);
    EXPECT_LE(*seconds, 30);
}

}  // namespace
}  // namespace prefork::testing

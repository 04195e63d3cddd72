// Connection handoff: a worker that drains for a reload, a recycle or a scale-down gives its
// keep-alive connections to the workers that stay, so that clients who send a request now
// and then (a connection pool) never find their connection closed.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "raw_client.hpp"
#include "sporadic_clients.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <signal.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string admin(const PreforkServer& server, const std::string& target) {
    return HttpConnection(server.admin_port()).get(target).body();
}

// The value of one sample of /metrics, or -1 when it is not there.
double metric(const PreforkServer& server, const std::string& sample) {
    std::istringstream lines(admin(server, "/metrics"));
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
}

// The generations of the workers alive, as the master reports them.
std::multiset<int> worker_generations(const PreforkServer& server) {
    std::multiset<int> generations;
    auto status = json::parse(admin(server, "/status.json")).as_object();
    for (const auto& worker : status.at("workers").as_array()) {
        generations.insert(static_cast<int>(worker.as_object().at("generation").as_int64()));
    }
    return generations;
}

std::string describe(const SporadicClients::Result& result) {
    std::string text =
        std::to_string(result.requests) + " requests, " + std::to_string(result.failed) +
        " failed, " + std::to_string(result.closed_by_server) + " connections closed by the server";
    for (const auto& error : result.errors) text += "\n  " + error;
    return text;
}

// The workers report their counts every second: a connection handed off just now may be
// counted by its new worker only at its next heartbeat.
void expect_every_connection_handed_off(const PreforkServer& server) {
    EXPECT_TRUE(eventually(
        [&] {
            // Connections rescued from the queue of a slot no worker accepts on (a scale-down)
            // are adopted too.
            double handed_off = metric(server, "prefork_connections_handed_off_total");
            double rescued = metric(server, "prefork_connections_rescued_total");
            return handed_off > 0 &&
                   metric(server, "prefork_connections_adopted_total") == handed_off + rescued;
        },
        5s))
        << "handed off " << metric(server, "prefork_connections_handed_off_total") << ", rescued "
        << metric(server, "prefork_connections_rescued_total") << ", adopted "
        << metric(server, "prefork_connections_adopted_total");
    EXPECT_EQ(metric(server, "prefork_connection_handoff_fallbacks_total"), 0);
}

// The client: 100 keep-alive connections, a request after a pause of 0.2 to 1.5 s
// (GET, or POST with a body), never retried, while prefork reloads 20 times, 1 s apart.
TEST(Handoff, SporadicClientsSeeNothingOfTwentyReloads) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    SporadicClients clients(server.port(), {.connections = 100, .duration = 23s});
    std::this_thread::sleep_for(1s);  // the clients' connections open and go idle
    for (int i = 0; i < 20; ++i) {
        server.signal(SIGHUP);
        std::this_thread::sleep_for(1s);  // the traffic shape under test: one reload a second
    }
    // Within 2 s after the last reload, only the new generation is alive.
    EXPECT_TRUE(eventually(
        [&] {
            return worker_generations(server) == std::multiset<int>{21, 21} &&
                   server.children().size() == 2;
        },
        2s))
        << server.output();
    auto result = clients.wait();
    EXPECT_GT(result.requests, 1000u);
    EXPECT_EQ(result.failed, 0u) << describe(result);
    EXPECT_EQ(result.closed_by_server, 0u) << describe(result);
    expect_every_connection_handed_off(server);
    EXPECT_EQ(server.wait_for_lines("keep-alive connection", 20).size(), 20u)
        << "each reload's last line says how many connections moved";
}

TEST(Handoff, SporadicClientsSeeNothingOfMaxRequestsRecycling) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--max-requests", "60"}});
    SporadicClients clients(server.port(), {.connections = 100, .duration = 10s});
    auto result = clients.wait();
    EXPECT_GE(metric(server, "prefork_worker_exits_total{cause=\"recycle\"}"), 5);
    EXPECT_EQ(result.failed, 0u) << describe(result);
    EXPECT_EQ(result.closed_by_server, 0u) << describe(result);
    expect_every_connection_handed_off(server);
}

TEST(Handoff, SporadicClientsSeeNothingOfScalingDown) {
    PreforkServer server(Loopback{4, {"--admin", "127.0.0.1:0"}});
    SporadicClients clients(server.port(), {.connections = 100, .duration = 6s});
    std::this_thread::sleep_for(1500ms);
    for (int i = 0; i < 3; ++i) {
        server.signal(SIGTTOU);
        std::this_thread::sleep_for(1s);
    }
    EXPECT_TRUE(server.wait_for_children(1));
    auto result = clients.wait();
    EXPECT_EQ(result.failed, 0u) << describe(result);
    EXPECT_EQ(result.closed_by_server, 0u) << describe(result);
    expect_every_connection_handed_off(server);
}

// The bytes a worker has read (its heartbeat reports them within a second).
bool worker_has_read(const PreforkServer& server, double bytes) {
    return eventually([&] { return metric(server, "prefork_received_bytes_total") >= bytes; }, 10s);
}

// Waits for the reload to complete and returns the new workers' pids.
std::vector<pid_t> reload_and_wait(PreforkServer& server, std::size_t reloads_so_far) {
    server.signal(SIGHUP);
    EXPECT_EQ(server.wait_for_lines("complete: the old generation has drained", reloads_so_far + 1)
                  .size(),
              reloads_so_far + 1)
        << server.output();
    return server.children();
}

TEST(Handoff, ARequestWhoseHeadHadPartlyArrivedCompletesOnTheNewWorker) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    pid_t old_worker = server.children().at(0);
    RawClient client(server.port());
    const std::string start = "GET /pid HTTP/1.1\r\nHo";
    ASSERT_TRUE(client.send(start));
    ASSERT_TRUE(worker_has_read(server, static_cast<double>(start.size())));
    auto new_workers = reload_and_wait(server, 0);
    ASSERT_TRUE(wait_until_gone({old_worker}, 10s));
    ASSERT_TRUE(client.send("st: x\r\n\r\n"));
    ASSERT_EQ(new_workers.size(), 1u);
    std::string answer = client.read_until("\r\n\r\n" + std::to_string(new_workers[0]), 5s);
    EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer;
    EXPECT_NE(answer.find("\r\n\r\n" + std::to_string(new_workers[0])), std::string::npos)
        << "answered by the new worker: " << answer;
    EXPECT_EQ(answer.find("Connection: close"), std::string::npos) << answer;
    expect_every_connection_handed_off(server);
}

// A slow request, then two pipelined behind it, the last one cut in the middle of its
// head: the old worker answers the first, the new one the rest, in order.
TEST(Handoff, APipelinedBurstSplitAcrossTheHandoffKeepsItsOrder) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    pid_t old_worker = server.children().at(0);
    RawClient client(server.port());
    ASSERT_TRUE(
        client.send("GET /sleep?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /pid HTTP/1.1\r\nHo"));
    ASSERT_TRUE(server.wait_for_requests_received(1));
    auto new_workers = reload_and_wait(server, 0);  // the old worker drains: busy until 1.5 s
    ASSERT_EQ(new_workers.size(), 1u);
    ASSERT_TRUE(wait_until_gone({old_worker}, 10s)) << "the old worker exits once it handed off";
    ASSERT_TRUE(client.send("st: x\r\n\r\n"));
    std::string new_pid = std::to_string(new_workers[0]);
    std::string answers;
    for (auto deadline = Clock::now() + 10s;
         Clock::now() < deadline && answers.rfind(new_pid) == answers.find(new_pid);) {
        answers += client.read_some(1s);
    }
    auto slept = answers.find("slept 1500 ms");
    auto second = answers.find("\r\n\r\n" + new_pid);
    auto third = answers.find("\r\n\r\n" + new_pid, second + 1);
    ASSERT_NE(slept, std::string::npos) << answers;
    ASSERT_NE(second, std::string::npos) << answers;
    ASSERT_NE(third, std::string::npos) << answers;
    EXPECT_LT(slept, second);
    EXPECT_EQ(answers.find("Connection: close"), std::string::npos) << answers;
    EXPECT_EQ(answers.find(std::to_string(old_worker)), std::string::npos)
        << "no pipelined request was answered by the old worker: " << answers;
}

// The new generation admits 2 connections (PREFORK_MAX_CONNECTIONS): of the 3 the old
// worker held, one cannot be taken over; it is closed, as without handoff, and counted.
TEST(Handoff, AConnectionTheNewWorkerCannotTakeIsClosedAndCounted) {
    TempDir dir("prefork-handoff");
    auto config = [&](int limit) {
        dir.write("prefork.toml", "command = [\"" + demo_binary() +
                                      "\"]\nbind = [\"127.0.0.1:0\"]\nworkers = 1\n"
                                      "admin = \"127.0.0.1:0\"\n[env]\n"
                                      "PREFORK_MAX_CONNECTIONS = \"" +
                                      std::to_string(limit) + "\"\n");
    };
    config(3);
    auto server = PreforkServer::from_config(dir.path("prefork.toml"), 1);
    std::vector<std::unique_ptr<HttpConnection>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<HttpConnection>(server->port()));
        ASSERT_EQ(clients.back()->get("/").result_int(), 200);
    }
    config(2);
    reload_and_wait(*server, 0);
    EXPECT_TRUE(eventually(
        [&] { return metric(*server, "prefork_connection_handoff_fallbacks_total") == 1; }, 5s));
    EXPECT_EQ(metric(*server, "prefork_connections_adopted_total"), 2);
    int answered = 0;
    for (auto& client : clients) {
        try {
            answered += client->get("/").body() == "Hello, World!";
        } catch (const std::exception&) {
            // the one that was closed
        }
    }
    EXPECT_EQ(answered, 2);
}

// TERM while an old worker is handing off: nobody will take its connections any more, so
// its request in flight is answered with Connection: close, as in any stop.
TEST(Handoff, ATermDuringAReloadAnswersInFlightRequestsWithConnectionClose) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    HttpConnection in_flight(server.port(), 20s);
    in_flight.send_raw("GET /sleep?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    server.signal(SIGHUP);
    ASSERT_EQ(server.wait_for_lines("draining: listeners closed", 1).size(), 1u);
    server.signal(SIGTERM);
    auto response = in_flight.read_response();
    EXPECT_EQ(response.body(), "slept 2000 ms\n");
    EXPECT_EQ(response[http::field::connection], "close");
    EXPECT_TRUE(in_flight.closed_by_peer());
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

// What the old worker read of a request may be too large for a handoff message (a header
// limit above 44 KiB): that connection stays and is answered there, with Connection: close.
TEST(Handoff, ARequestTooLargeToHandOffIsAnsweredByTheOldWorker) {
    PreforkServer server(
        Loopback{1, {"--admin", "127.0.0.1:0", "--env", "PREFORK_HEADER_LIMIT=100000"}});
    pid_t old_worker = server.children().at(0);
    RawClient client(server.port());
    std::string start = "GET /pid HTTP/1.1\r\nHost: x\r\nX-Large: " + std::string(60000, 'a');
    ASSERT_TRUE(client.send(start));
    ASSERT_TRUE(worker_has_read(server, static_cast<double>(start.size())));
    server.signal(SIGHUP);
    ASSERT_EQ(server.wait_for_lines("draining: listeners closed", 1).size(), 1u);
    ASSERT_TRUE(client.send("\r\n\r\n"));
    std::string answer = client.read_to_end(10s);
    EXPECT_NE(answer.find("\r\n\r\n" + std::to_string(old_worker)), std::string::npos) << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
    EXPECT_TRUE(eventually(
        [&] { return metric(server, "prefork_connection_handoff_fallbacks_total") == 1; }, 5s));
}

// Clients that vanish while their connections move: those connections end in the new
// worker (it reads their end), the others are served, and nothing is held for the gone.
TEST(Handoff, ClientsThatLeaveDuringTheHandoffCostNothing) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 100; ++i) {
        clients.push_back(std::make_unique<RawClient>(server.port()));
        ASSERT_TRUE(clients.back()->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        ASSERT_NE(clients.back()->read_until("Hello, World!", 5s).find("200 OK"),
                  std::string::npos);
    }
    server.signal(SIGHUP);
    for (int i = 0; i < 100; i += 2) clients[i]->reset();  // while they are on their way
    ASSERT_EQ(server.wait_for_lines("complete: the old generation has drained", 1).size(), 1u);
    for (int i = 1; i < 100; i += 2) {
        ASSERT_TRUE(clients[i]->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        EXPECT_NE(clients[i]->read_until("Hello, World!", 5s).find("200 OK"), std::string::npos)
            << "client " << i;
    }
    EXPECT_TRUE(eventually([&] { return metric(server, "prefork_active_connections") == 50; }, 5s))
        << metric(server, "prefork_active_connections") << " connections open";
    EXPECT_EQ(metric(server, "prefork_connection_handoff_fallbacks_total"), 0);
}

}  // namespace
}  // namespace prefork::testing

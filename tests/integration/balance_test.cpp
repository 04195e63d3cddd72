// Per-slot accept queues (--reuseport, the default): each worker slot has a listening
// socket of its own, kept by the master. New connections spread evenly over the slots whose
// worker accepts; what waits in the queue of a slot whose worker does not (it hangs, or the
// slot is no longer wanted) is taken by the master and served by another worker.

#include "client_load.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <signal.h>

#include <future>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

json::object status(const PreforkServer& server) {
    return json::parse(HttpConnection(server.admin_port()).get("/status.json").body()).as_object();
}

// Connections each worker slot has taken from its listeners, as the master reports them.
std::map<int, std::uint64_t> slot_connections(const PreforkServer& server) {
    std::map<int, std::uint64_t> slots;
    json::object report = status(server);  // kept: the loop reads into it
    for (const auto& slot : report.at("slots").as_array()) {
        slots[static_cast<int>(slot.at("slot").as_int64())] =
            slot.at("connections_accepted").to_number<std::uint64_t>();
    }
    return slots;
}

std::uint64_t total(const std::map<int, std::uint64_t>& slots) {
    std::uint64_t sum = 0;
    for (const auto& [slot, count] : slots) sum += count;
    return sum;
}

std::string describe(const std::map<int, std::uint64_t>& slots) {
    std::ostringstream text;
    for (const auto& [slot, count] : slots) text << "slot " << slot << ": " << count << "; ";
    return text.str();
}

std::uint64_t rescued(const PreforkServer& server) {
    return status(server).at("connections_rescued").to_number<std::uint64_t>();
}

// The client a shared queue serves worst: one connection at a time, a request on each. With
// one queue, the worker that is awake takes them all; with a queue per slot, each slot
// takes its share.
TEST(Balance, ASequentialClientIsSpreadOverEveryWorker) {
    PreforkServer server(Loopback{4, {"--admin", "127.0.0.1:0"}});
    EXPECT_EQ(status(server).at("listen_queues").as_string(), "per-slot");
    constexpr int kConnections = 200;
    for (int i = 0; i < kConnections; ++i)
        ASSERT_EQ(http_get(server.port(), "/").result_int(), 200);
    std::map<int, std::uint64_t> slots;
    ASSERT_TRUE(eventually(
        [&] {
            slots = slot_connections(server);
            return total(slots) >= kConnections;
        },
        5s))
        << describe(slots);
    ASSERT_EQ(slots.size(), 4u) << describe(slots);
    for (const auto& [slot, count] : slots) {
        EXPECT_GE(count, 20u) << "each slot takes about a quarter: " << describe(slots);
    }
    EXPECT_EQ(rescued(server), 0u) << "every slot's worker accepts: the master takes nothing";
}

TEST(Balance, WithReuseportOffTheWorkersShareOneQueue) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--reuseport", "off"}});
    EXPECT_EQ(status(server).at("listen_queues").as_string(), "shared");
    for (int i = 0; i < 20; ++i) ASSERT_EQ(http_get(server.port(), "/").result_int(), 200);
    std::map<int, std::uint64_t> slots;
    EXPECT_TRUE(eventually(
        [&] {
            slots = slot_connections(server);
            return total(slots) >= 20;
        },
        5s))
        << describe(slots);
}

// A handler that blocks its worker's loop (here for 15 s, under --timeout 30, so the worker
// is not killed): its slot's queue is not served meanwhile. Within a few seconds its late
// heartbeat steers new connections to the other slot, and the master passes what had queued
// for it to the other worker: every new client is answered long before the block ends.
TEST(Balance, ConnectionsQueuedForABlockedWorkerAreServedByTheOthers) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--timeout", "30"}});
    auto workers = server.children();
    ASSERT_EQ(workers.size(), 2u);
    HttpConnection blocker(server.port(), 30s);
    blocker.send_raw("GET /block?ms=15000 HTTP/1.1\r\nHost: t\r\n\r\n");
    pid_t blocked = 0;
    ASSERT_TRUE(eventually(
        [&] {
            for (pid_t pid : workers) {
                if (threads_in_nanosleep(pid) > 0) blocked = pid;
            }
            return blocked != 0;
        },
        5s));

    auto started = Clock::now();
    constexpr int kClients = 20;
    std::vector<std::future<int>> answers;
    for (int i = 0; i < kClients; ++i) {
        answers.push_back(std::async(std::launch::async, [&] {
            return static_cast<int>(HttpConnection(server.port(), 12s).get("/").result_int());
        }));
    }
    for (auto& answer : answers) {
        try {
            EXPECT_EQ(answer.get(), 200);
        } catch (const std::exception& error) {
            ADD_FAILURE() << "a client got no answer: " << error.what();
        }
    }
    auto waited = Clock::now() - started;
    EXPECT_LT(waited, 12s) << "answered before the block ended";
    EXPECT_TRUE(eventually([&] { return rescued(server) > 0; }, 2s))
        << "about half of the clients queued for the blocked worker; the master passed them on";
    EXPECT_EQ(server.children(), workers) << "the blocked worker was not killed";
    EXPECT_EQ(blocker.read_response().result_int(), 200);

    // Back on time, the worker takes its share of new connections again.
    auto before = slot_connections(server);
    for (int i = 0; i < 100; ++i) ASSERT_EQ(http_get(server.port(), "/").result_int(), 200);
    std::map<int, std::uint64_t> after;
    ASSERT_TRUE(eventually(
        [&] {
            after = slot_connections(server);
            return total(after) >= total(before) + 100;
        },
        5s));
    for (const auto& [slot, count] : after) {
        EXPECT_GE(count - before[slot], 10u) << describe(before) << " then " << describe(after);
    }
}

// After scaling from 4 workers to 1, new connections go to the one slot left: none waits in
// the queue of a slot that has no worker any more (the master would have to pass it on).
TEST(Balance, AfterScalingDownNewConnectionsGoOnlyToTheSlotsLeft) {
    PreforkServer server(Loopback{4, {"--admin", "127.0.0.1:0"}});
    ASSERT_EQ(HttpConnection(server.admin_port())
                  .request(http::verb::post, "/scale?workers=1")
                  .result_int(),
              200);
    ASSERT_TRUE(server.wait_for_children(1));
    auto before = slot_connections(server);
    auto rescued_before = rescued(server);
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(HttpConnection(server.port(), 3s).get("/").result_int(), 200) << "request " << i;
    }
    std::map<int, std::uint64_t> after;
    ASSERT_TRUE(eventually(
        [&] {
            after = slot_connections(server);
            return total(after) >= total(before) + 100;
        },
        5s))
        << describe(after);
    int grew = 0;
    for (const auto& [slot, count] : after) grew += count > before[slot];
    EXPECT_EQ(grew, 1) << describe(before) << " then " << describe(after);
    EXPECT_EQ(rescued(server), rescued_before);
}

// The connections each worker has open now, by pid.
std::map<std::int64_t, std::uint64_t> open_connections(const PreforkServer& server) {
    std::map<std::int64_t, std::uint64_t> open;
    json::object report = status(server);
    for (const auto& worker : report.at("workers").as_array()) {
        open[worker.at("pid").as_int64()] =
            worker.at("active_connections").to_number<std::uint64_t>();
    }
    return open;
}

// A pool of keep-alive connections that opens one after the other lands on the workers as
// chance has it, and stays there for as long as it lives (with a shared queue, as here,
// mostly on one worker); the master evens them out: the workers with more than their share
// hand the rest over, between requests, to those with fewer. Every connection serves on,
// none is closed.
TEST(Balance, KeepAliveConnectionsAreEvenedOutAcrossTheWorkers) {
    PreforkServer server(Loopback{4, {"--admin", "127.0.0.1:0", "--reuseport", "off"}});
    constexpr int kConnections = 12;
    std::vector<std::unique_ptr<HttpConnection>> pool;
    // Where each connection's first request landed. A pool that chance spread evenly
    // already (the workers of a busy machine all wake) is opened again: this test asks
    // what happens to an uneven one.
    for (int attempt = 0; attempt < 20; ++attempt) {
        pool.clear();
        std::map<std::string, int> landed;
        for (int i = 0; i < kConnections; ++i) {
            pool.push_back(std::make_unique<HttpConnection>(server.port()));
            auto response = pool.back()->get("/pid");
            ASSERT_EQ(response.result_int(), 200);
            ++landed[response.body()];
        }
        bool even = landed.size() == 4;
        for (const auto& [pid, count] : landed) even = even && count == kConnections / 4;
        if (!even) break;
        ASSERT_LT(attempt, 19) << "every pool of " << kConnections << " was spread evenly at once";
    }
    std::map<std::int64_t, std::uint64_t> open;
    EXPECT_TRUE(eventually(
        [&] {
            open = open_connections(server);
            if (open.size() != 4) return false;
            for (const auto& [pid, count] : open) {
                if (count != kConnections / 4) return false;
            }
            return true;
        },
        10s))
        << [&] {
               std::ostringstream text;
               for (const auto& [pid, count] : open) text << pid << ": " << count << "; ";
               return text.str();
           }();
    std::set<std::string> pids;
    for (auto& connection : pool) {
        auto response = connection->get("/pid");
        EXPECT_EQ(response.result_int(), 200);
        pids.insert(response.body());
    }
    EXPECT_EQ(pids.size(), 4u) << "the pool's requests reach every worker";
    auto handoffs = status(server).at("connection_handoffs");
    EXPECT_GT(handoffs.at("handed_off").to_number<int>(), 0);
    EXPECT_EQ(handoffs.at("fallbacks").to_number<int>(), 0);
}

std::string first_error(const ClientLoad::Result& result) {
    return result.errors.empty() ? "" : result.errors[0];
}

// Clients that open a new connection for each request (and others on keep-alive) while the
// workers go from 4 to 1 and back, again and again: a connection queued for a slot whose
// worker is going is served by another, none is refused or reset.
TEST(Balance, ClientsConnectingInALoopLoseNothingWhileWorkersScaleDownAndUp) {
    PreforkServer server(Loopback{4, {"--admin", "127.0.0.1:0"}});
    ClientLoad load(server.port(), "/", "Hello, World!", 4, 8, 60s);
    for (int workers : {1, 4, 2, 4, 1, 3}) {
        std::this_thread::sleep_for(400ms);
        ASSERT_EQ(HttpConnection(server.admin_port())
                      .request(http::verb::post, "/scale?workers=" + std::to_string(workers))
                      .result_int(),
                  200);
    }
    EXPECT_TRUE(server.wait_for_children(3));
    std::this_thread::sleep_for(400ms);
    auto result = load.stop();
    EXPECT_GT(result.ok, 100u);
    EXPECT_EQ(result.failed, 0u) << first_error(result);
}

// The same clients while every worker is recycled every 500 requests (20 times): each replacement
// takes its slot's queue over.
TEST(Balance, ClientsConnectingInALoopLoseNothingWhileWorkersAreRecycled) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--max-requests", "500"}});
    ClientLoad load(server.port(), "/", "Hello, World!", 2, 8, 60s);
    ASSERT_TRUE(eventually(
        [&] {
            json::object report = status(server);
            const json::value* recycled =
                report.at("worker_exits").as_object().if_contains("recycle");
            return recycled != nullptr && recycled->to_number<int>() >= 20;
        },
        30s));
    auto result = load.stop();
    EXPECT_EQ(result.failed, 0u) << first_error(result);
}

}  // namespace
}  // namespace prefork::testing

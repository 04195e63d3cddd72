// Operating prefork: the admin endpoint (served by the master, so it answers while
// workers crash, hang or reload), preforkctl, and the logs.

#include "child_process.hpp"
#include "client_load.hpp"
#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

HttpResponse admin_get(const PreforkServer& server, const std::string& target,
                       std::chrono::milliseconds timeout = 10s) {
    return HttpConnection(server.admin_port(), timeout).get(target);
}

HttpResponse admin_post(const PreforkServer& server, const std::string& target) {
    return HttpConnection(server.admin_port()).request(http::verb::post, target);
}

json::object status_json(const PreforkServer& server) {
    return json::parse(admin_get(server, "/status.json").body()).as_object();
}

// The value of one sample of /metrics ("name{labels}"), or -1.
double metric(const std::string& metrics, const std::string& sample) {
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::string temp_path(const std::string& name) {
    return "/tmp/prefork-admin-" + std::to_string(::getpid()) + "-" + name;
}

TEST(Admin, HealthReadinessStatusAndErrors) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    auto health = admin_get(server, "/healthz");
    EXPECT_EQ(health.result_int(), 200);
    EXPECT_EQ(health.body(), "ok\n");
    EXPECT_EQ(admin_get(server, "/readyz").result_int(), 200);

    auto status = status_json(server);
    EXPECT_TRUE(status.at("ready").as_bool());
    EXPECT_EQ(status.at("target_workers").as_int64(), 2);
    EXPECT_EQ(status.at("master_pid").as_int64(), server.pid());
    ASSERT_EQ(status.at("workers").as_array().size(), 2u);
    for (const auto& worker : status.at("workers").as_array()) {
        EXPECT_EQ(worker.at("state").as_string(), "ready");
        EXPECT_GT(worker.at("rss_bytes").to_number<std::uint64_t>(), 0u);
    }

    auto page = admin_get(server, "/status");
    EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
    EXPECT_NE(page.body().find("<meta http-equiv=\"refresh\""), std::string::npos);
    EXPECT_EQ(page.body().find("src=\"http"), std::string::npos) << "no external assets";

    EXPECT_EQ(admin_get(server, "/nope").result_int(), 404);
    EXPECT_EQ(admin_get(server, "/reload").result_int(), 405) << "controls are POST only";
    EXPECT_EQ(admin_post(server, "/scale?workers=0").result_int(), 400);
    EXPECT_EQ(admin_post(server, "/scale?workers=lots").result_int(), 400);
}

TEST(Admin, ReadinessTurns503WhenAGracefulStopBegins) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    auto admin_port = server.admin_port();
    HttpConnection slow(server.port(), 20s);
    slow.send_raw("GET /sleep?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    EXPECT_EQ(HttpConnection(admin_port).get("/readyz").result_int(), 200);

    server.signal(SIGTERM);
    EXPECT_EQ(wait_for_status(admin_port, "/readyz", 503, 2s), 503u)
        << "ready while the stop drains the request";
    EXPECT_EQ(HttpConnection(admin_port).get("/healthz").result_int(), 200)
        << "the master still runs";
    EXPECT_EQ(slow.read_response().result_int(), 200);
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

TEST(Admin, AnswersWhileTheOnlyWorkerHangs) {
    PreforkServer server(Loopback{1, {"--admin", "127.0.0.1:0"}});
    HttpConnection hung(server.port(), 30s);
    pid_t worker = std::stoi(hung.get("/pid").body());
    hung.send_raw("GET /block?ms=8000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(wait_until_in_nanosleep(worker, 10s)) << "the worker did not block";
    EXPECT_THROW(HttpConnection(server.port(), 1s).get("/"), boost::system::system_error)
        << "the only worker is blocked";
    EXPECT_EQ(admin_get(server, "/healthz", 5s).result_int(), 200);
    EXPECT_EQ(admin_get(server, "/status.json", 5s).result_int(), 200);
    EXPECT_EQ(admin_get(server, "/metrics", 5s).result_int(), 200);
    EXPECT_EQ(hung.read_response().result_int(), 200);
}

TEST(Admin, CountersGrowAndNeverGoBackwardsWhenAWorkerCrashes) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    for (int i = 0; i < 50; ++i) ASSERT_EQ(http_get(server.port(), "/").result_int(), 200);

    double before = 0;
    eventually(
        [&] {
            before = metric(admin_get(server, "/metrics").body(),
                            "prefork_requests_total{code=\"2xx\"}");
            return before >= 50;
        },
        15s);
    EXPECT_GE(before, 50) << "the heartbeats did not bring the counts";

    HttpConnection victim(server.port());
    victim.send_raw("GET /crash HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_THROW(victim.read_response(), boost::system::system_error);
    ASSERT_EQ(server.wait_for_lines(" ready (generation", 3).size(), 3u);

    std::string metrics = admin_get(server, "/metrics").body();
    EXPECT_GE(metric(metrics, "prefork_requests_total{code=\"2xx\"}"), before)
        << "the crashed worker's requests were forgotten";
    EXPECT_EQ(metric(metrics, "prefork_worker_exits_total{cause=\"crash\"}"), 1);
    EXPECT_EQ(metric(metrics, "prefork_worker_starts_total"), 3);
    EXPECT_GE(metric(metrics, "prefork_request_duration_seconds_count"), before);
    auto events = status_json(server).at("events").as_array();
    ASSERT_FALSE(events.empty());
    EXPECT_NE(std::string(events.back().at("text").as_string()).find("killed by SIGSEGV"),
              std::string::npos);
}

TEST(Admin, PerSlotCountersStayAsFewAsTheWorkersWhileWorkersAreReplaced) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0", "--max-requests", "20"}});
    constexpr int kRequests = 150;  // on a new connection each: workers are replaced
    for (int i = 0; i < kRequests; ++i) ASSERT_EQ(http_get(server.port(), "/").result_int(), 200);

    json::object status;
    std::uint64_t slot_requests = 0, slot_connections = 0;
    std::set<std::int64_t> slots;
    eventually(
        [&] {
            status = status_json(server);
            slot_requests = slot_connections = 0;
            slots.clear();
            for (const auto& slot : status.at("slots").as_array()) {
                slots.insert(slot.at("slot").as_int64());
                slot_requests += slot.at("requests").to_number<std::uint64_t>();
                slot_connections += slot.at("connections_accepted").to_number<std::uint64_t>();
            }
            return slot_requests >= kRequests;
        },
        15s);
    EXPECT_EQ(slot_requests, status.at("totals").at("requests").to_number<std::uint64_t>());
    EXPECT_GE(slot_connections, static_cast<std::uint64_t>(kRequests));
    EXPECT_EQ(slots, (std::set<std::int64_t>{0, 1})) << json::serialize(status);
    EXPECT_GT(status.at("worker_starts").to_number<std::size_t>(), slots.size() + 1)
        << "workers were replaced, more than once";
    std::set<std::int64_t> held;
    for (const auto& worker : status.at("workers").as_array()) {
        if (worker.at("state").as_string() == "ready" && !worker.at("retiring").as_bool())
            held.insert(worker.at("slot").as_int64());
    }
    EXPECT_EQ(held.size(), 2u) << "two ready workers in two slots: " << json::serialize(status);

    std::string metrics = admin_get(server, "/metrics").body();
    EXPECT_GE(metric(metrics, "prefork_worker_slot_requests_total{slot=\"0\"}") +
                  metric(metrics, "prefork_worker_slot_requests_total{slot=\"1\"}"),
              kRequests);
    EXPECT_EQ(metric(metrics, "prefork_worker_slot_connections_total{slot=\"2\"}"), -1)
        << "a slot beyond the workers";
}

TEST(Admin, MetricsPassPromtool) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    for (int i = 0; i < 20; ++i) http_get(server.port(), i % 5 ? "/" : "/missing");
    ASSERT_TRUE(server.wait_for_requests_received(20));  // a heartbeat brought them all
    std::string path = temp_path("metrics.txt");
    std::ofstream(path) << admin_get(server, "/metrics").body();
    ChildProcess promtool({"sh", "-c", "promtool check metrics < " + path});
    EXPECT_EQ(promtool.wait_exit_status(30s), 0) << promtool.output();
    fs::remove(path);
}

TEST(Admin, ScaleReloadAndStopDoWhatTheSignalsDo) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    EXPECT_EQ(admin_post(server, "/scale?workers=3").result_int(), 200);
    EXPECT_TRUE(server.wait_for_children(3));
    EXPECT_EQ(admin_post(server, "/scale?workers=1").result_int(), 200);
    EXPECT_TRUE(server.wait_for_children(1));

    EXPECT_EQ(admin_post(server, "/reload").result_int(), 202);
    EXPECT_EQ(server.wait_for_lines("reload to generation 2 complete", 1).size(), 1u);
    auto metrics = admin_get(server, "/metrics").body();
    EXPECT_EQ(metric(metrics, "prefork_reloads_total"), 1);
    EXPECT_EQ(metric(metrics, "prefork_worker_exits_total{cause=\"scale\"}"), 2);
    EXPECT_EQ(metric(metrics, "prefork_worker_exits_total{cause=\"reload\"}"), 1);

    EXPECT_EQ(admin_post(server, "/stop").result_int(), 202);
    EXPECT_EQ(server.wait_exit_status(10s), 0);
}

TEST(Admin, StatusPageShowsOneRowPerWorkerInARealBrowser) {
    PreforkServer server(Loopback{3, {"--admin", "127.0.0.1:0"}});
    std::string profile = temp_path("chromium-profile");
    ChildProcess chromium({"chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--user-data-dir=" + profile, "--dump-dom",
                           "http://127.0.0.1:" + std::to_string(server.admin_port()) + "/status"});
    ASSERT_EQ(chromium.wait_exit_status(60s), 0) << chromium.output();
    std::string dom = chromium.output();
    const std::regex worker_row("<tr class=\"worker\">");
    auto rows = std::distance(std::sregex_iterator(dom.begin(), dom.end(), worker_row),
                              std::sregex_iterator());
    EXPECT_EQ(rows, 3) << dom.substr(0, 2000);
    for (pid_t worker : server.children()) {
        EXPECT_NE(dom.find("<td>" + std::to_string(worker) + "</td>"), std::string::npos) << worker;
    }
    fs::remove_all(profile);
}

TEST(Preforkctl, EveryCommand) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    std::string admin = "127.0.0.1:" + std::to_string(server.admin_port());
    auto ctl = [&](std::vector<std::string> args) {
        std::vector<std::string> argv{preforkctl_binary(), "--admin", admin};
        argv.insert(argv.end(), args.begin(), args.end());
        return std::make_unique<ChildProcess>(argv);
    };

    auto status = ctl({"status"});
    ASSERT_EQ(status->wait_exit_status(10s), 0) << status->output();
    for (pid_t worker : server.children()) {
        EXPECT_NE(status->output().find(std::to_string(worker)), std::string::npos)
            << status->output();
    }
    EXPECT_NE(status->output().find("ready, generation 1"), std::string::npos) << status->output();

    auto health = ctl({"health"});
    EXPECT_EQ(health->wait_exit_status(10s), 0);
    EXPECT_EQ(health->output(), "ready\n");

    auto scale = ctl({"scale", "3"});
    EXPECT_EQ(scale->wait_exit_status(10s), 0) << scale->output();
    EXPECT_TRUE(server.wait_for_children(3));
    auto bad_scale = ctl({"scale", "0"});
    EXPECT_EQ(bad_scale->wait_exit_status(10s), 1) << bad_scale->output();

    auto reload = ctl({"reload"});
    EXPECT_EQ(reload->wait_exit_status(10s), 0);
    EXPECT_EQ(server.wait_for_lines("reload to generation 2 complete", 1).size(), 1u);

    auto stop = ctl({"stop"});
    EXPECT_EQ(stop->wait_exit_status(10s), 0);
    EXPECT_EQ(server.wait_exit_status(10s), 0);

    auto unreachable = ctl({"health"});
    EXPECT_EQ(unreachable->wait_exit_status(10s), 1);
    EXPECT_NE(unreachable->output().find("cannot reach prefork's admin endpoint at " + admin),
              std::string::npos)
        << unreachable->output();
}

TEST(Preforkctl, UsageMistakes) {
    ChildProcess no_address({preforkctl_binary(), "status"}, {"PREFORK_ADMIN="});
    EXPECT_EQ(no_address.wait_exit_status(10s), 2);
    EXPECT_NE(no_address.output().find("no admin address"), std::string::npos);
    ChildProcess unknown({preforkctl_binary(), "--admin", "127.0.0.1:1", "frobnicate"});
    EXPECT_EQ(unknown.wait_exit_status(10s), 2);
}

TEST(Logs, JsonLinesFromManyProcessesUnderLoadNeverInterleave) {
    PreforkServer server(Loopback{2, {"--log-format", "json", "--access-log", "-"}});
    ClientLoad load(server.port(), "/", "Hello, World!", 4, 2, 30s, 300);
    auto result = load.wait();
    EXPECT_EQ(result.failed, 0u);
    server.signal(SIGTERM);
    ASSERT_EQ(server.wait_exit_status(10s), 0);

    std::size_t access = 0;
    for (const auto& line : lines_of(server.output())) {
        boost::system::error_code ec;
        json::value value = json::parse(line, ec);
        ASSERT_FALSE(ec) << "not one JSON object: " << line;
        const json::object& entry = value.as_object();
        EXPECT_TRUE(entry.contains("time") && entry.contains("level") && entry.contains("role") &&
                    entry.contains("pid"))
            << line;
        if (entry.contains("type") && entry.at("type") == "access") {
            ++access;
            EXPECT_EQ(entry.at("method"), "GET");
            EXPECT_EQ(entry.at("status").as_int64(), 200);
            EXPECT_TRUE(std::string(entry.at("client").as_string()).starts_with("127.0.0.1:"));
        }
    }
    EXPECT_EQ(access, result.ok);
}

TEST(Logs, AccessLogFileIsReopenedOnUsr1) {
    std::string path = temp_path("access.log");
    PreforkServer server(Loopback{2, {"--access-log", path, "--log-level", "debug"}});
    auto read = [](const std::string& file) {
        std::ifstream in(file);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    for (int i = 0; i < 4; ++i) http_get(server.port(), "/?phase=before");
    eventually([&] { return lines_of(read(path)).size() >= 4; }, 2s);
    fs::rename(path, path + ".1");  // what logrotate does
    server.signal(SIGUSR1);
    ASSERT_EQ(server.wait_for_lines("access log reopened", 2, 10s).size(), 2u) << server.output();
    for (int i = 0; i < 4; ++i) http_get(server.port(), "/?phase=after");

    // A worker writes the line once its response is written, which may be just after the
    // client has read it.
    std::string rotated = read(path + ".1"), current;
    eventually(
        [&] {
            current = read(path);
            return lines_of(current).size() >= 4;
        },
        2s);
    EXPECT_EQ(lines_of(rotated).size(), 4u) << rotated;
    EXPECT_EQ(rotated.find("phase=after"), std::string::npos);
    EXPECT_EQ(lines_of(current).size(), 4u) << current;
    EXPECT_NE(current.find("\"GET /?phase=after\" 200"), std::string::npos) << current;
    fs::remove(path);
    fs::remove(path + ".1");
}

}  // namespace
}  // namespace prefork::testing

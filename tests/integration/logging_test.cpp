// Logs never block a loop: with stderr stalled (a stuck log shipper), the master keeps
// supervising and answering, the workers keep serving and are not taken for hung, and the
// lines that could not wait are counted and reported once stderr drains. Each line reaches
// the pipe whole, however long.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <signal.h>

#include <algorithm>
#include <sstream>
#include <thread>

namespace prefork::testing {
namespace {

namespace json = boost::json;

HttpResponse admin_request(std::uint16_t port, http::verb method, const std::string& target) {
    return HttpConnection(port, 10s).request(method, target);
}

double metric(const std::string& metrics, const std::string& sample) {
    std::istringstream lines(metrics);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
    }
    return -1;
}

int ready_workers(std::uint16_t admin_port) {
    auto status = json::parse(admin_request(admin_port, http::verb::get, "/status.json").body());
    int ready = 0;
    for (const auto& worker : status.at("workers").as_array()) {
        if (worker.at("state").as_string() == "ready") ++ready;
    }
    return ready;
}

bool wait_for_ready_workers(std::uint16_t admin_port, int count,
                            std::chrono::milliseconds timeout) {
    return eventually([&] { return ready_workers(admin_port) == count; }, timeout);
}

// "2026-12-02T00:00:00.000Z info master[12] ...": the shape every log line starts with.
bool has_log_line_shape(const std::string& line) {
    const std::string digits = "0123456789";
    const std::string stamp = "dddd-dd-ddTdd:dd:dd.dddZ ";
    if (line.size() < stamp.size()) return false;
    for (std::size_t i = 0; i < stamp.size(); ++i) {
        bool ok = stamp[i] == 'd' ? digits.find(line[i]) != std::string::npos : line[i] == stamp[i];
        if (!ok) return false;
    }
    std::istringstream rest(line.substr(stamp.size()));
    std::string level, role;
    rest >> level >> role;
    if (level != "debug" && level != "info" && level != "warning" && level != "error") {
        return false;
    }
    bool known = role.starts_with("master[") || role.starts_with("worker[");
    return known && role.back() == ']';
}

// Every line has the shape of a log line: none was cut or interleaved with another.
void expect_whole_lines(const std::string& output) {
    std::istringstream lines(output);
    int checked = 0;
    for (std::string line; std::getline(lines, line);) {
        ++checked;
        EXPECT_TRUE(has_log_line_shape(line)) << "not a whole line: " << line.substr(0, 300);
        EXPECT_LE(line.size() + 1, 4096u) << line.substr(0, 300);
    }
    EXPECT_GT(checked, 0);
}

TEST(Logging, AStalledStderrBlocksNoLoopAndTheLossIsReported) {
    // A 4 KiB pipe that nobody reads, 16 KiB of lines kept per process: both overflow fast.
    auto server = PreforkServer::with_output_pipe(
        Loopback{.workers = 2,
                 .args = {"--timeout", "2", "--admin", "127.0.0.1:0", "--access-log", "-"},
                 .env = {"PREFORK_LOG_BUFFER=16384"}});
    std::uint16_t admin = server->admin_port();
    auto workers = server->children();
    ASSERT_EQ(workers.size(), 2u);

    server->stall_output();
    auto stalled_at = std::chrono::steady_clock::now();
    // The workers log a line per request, the master one per /scale.
    for (int i = 0; i < 1000; ++i) {
        ASSERT_EQ(http_get(server->port(), "/").result_int(), 200u) << "request " << i;
    }
    for (int i = 0; i < 400; ++i) {
        ASSERT_EQ(admin_request(admin, http::verb::post, "/scale?workers=2").result_int(), 200u)
            << "scale " << i;
    }
    // Signals still work: one more worker, ready while stderr is stalled, then one fewer.
    server->signal(SIGTTIN);
    EXPECT_TRUE(wait_for_ready_workers(admin, 3, 20s));
    server->signal(SIGTTOU);
    EXPECT_TRUE(wait_for_ready_workers(admin, 2, 20s));

    // Longer than --timeout: a worker or a master blocked on stderr would be seen as hung.
    while (std::chrono::steady_clock::now() - stalled_at < 5s) {
        EXPECT_EQ(admin_request(admin, http::verb::get, "/healthz").result_int(), 200u);
        EXPECT_EQ(http_get(server->port(), "/").result_int(), 200u);
        std::this_thread::sleep_for(200ms);
    }
    for (pid_t pid : workers) EXPECT_FALSE(process_gone(pid)) << "worker " << pid << " is gone";
    auto status = json::parse(admin_request(admin, http::verb::get, "/status.json").body());
    const auto& exits = status.at("worker_exits").as_object();
    EXPECT_FALSE(exits.contains("hang")) << json::serialize(exits);

    auto metrics = admin_request(admin, http::verb::get, "/metrics").body();
    EXPECT_GT(metric(metrics, "prefork_log_lines_dropped_total{process=\"master\"}"), 0) << metrics;
    EXPECT_GT(metric(metrics, "prefork_log_lines_dropped_total{process=\"workers\"}"), 0)
        << metrics;

    server->resume_output();
    // One report from the master and one from each worker that dropped lines.
    auto reports_from = [&](const char* role) {
        auto reports =
            server->wait_for_lines("log lines dropped: stderr was not taking them", 0, 0ms);
        return std::count_if(reports.begin(), reports.end(), [&](const std::string& line) {
            return line.find(role) != std::string::npos;
        });
    };
    eventually([&] { return reports_from(" master[") > 0 && reports_from(" worker[") > 0; }, 15s);
    EXPECT_EQ(reports_from(" master["), 1) << server->output();
    EXPECT_GE(reports_from(" worker["), 1) << server->output();
    expect_whole_lines(server->output());

    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit_status(30s), 0);
}

TEST(Logging, AnAccessLineForAHugeTargetIsCutToOnePipeWrite) {
    auto server = PreforkServer::with_output_pipe(Loopback{2, {"--access-log", "-"}});
    std::string target = "/" + std::string(15000, 'a');
    for (int i = 0; i < 20; ++i) EXPECT_EQ(http_get(server->port(), target).result_int(), 404u);
    auto lines = server->wait_for_lines(" access ", 20, 10s);
    ASSERT_EQ(lines.size(), 20u) << server->output().substr(0, 2000);
    for (const auto& line : lines) {
        EXPECT_LE(line.size() + 1, 4096u);
        EXPECT_NE(line.find("bytes, cut]"), std::string::npos) << line.substr(0, 200);
        EXPECT_NE(line.find("\" 404 "), std::string::npos) << line.substr(line.size() - 200);
    }
    expect_whole_lines(server->output());
}

}  // namespace
}  // namespace prefork::testing

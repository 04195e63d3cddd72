// Processes started from handlers: prefork::run_process (coroutine, callback, from the
// offload pool) and what a process holds, for every way a handler may start one.

#include "eventually.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

// prefork with process_worker as its worker command.
std::unique_ptr<PreforkServer> process_worker_server(int workers = 1) {
    return PreforkServer::with_worker(
        Loopback{workers,
                 {"--env", std::string("PREFORK_TEST_FD_REPORT=") + FD_REPORT_BINARY, "--env",
                  "PREFORK_OFFLOAD_THREADS=4"}},
        {PROCESS_WORKER_BINARY});
}

json::object run(HttpConnection& connection, const std::string& endpoint, const json::object& spec,
                 int expected_status = 200) {
    auto response =
        connection.request(http::verb::post, endpoint, json::serialize(spec), "application/json");
    EXPECT_EQ(response.result_int(), expected_status) << response.body();
    if (response.result_int() != 200) return json::object{{"error", response.body()}};
    return json::parse(response.body()).as_object();
}

json::array strings(std::initializer_list<const char*> items) {
    json::array array;
    for (const char* item : items) array.emplace_back(item);
    return array;
}

// A file the test owns, removed at the end.
struct TempFile {
    std::string path = "/tmp/prefork-subprocess-test-" + std::to_string(::getpid()) + "-" +
                       std::to_string(Clock::now().time_since_epoch().count());
    ~TempFile() { fs::remove(path); }
    // The pid a command wrote there, once it did (within 5 s), or -1.
    pid_t wait_for_pid() const {
        pid_t pid = -1;
        eventually(
            [&] {
                int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
                if (fd < 0) return false;
                char text[32] = {};
                ssize_t n = ::read(fd, text, sizeof text - 1);
                ::close(fd);
                if (n <= 0 || text[n - 1] != '\n') return false;  // not written whole yet
                pid = static_cast<pid_t>(std::atoi(text));
                return true;
            },
            5s);
        return pid;
    }
};

// Kills, by pid, what a test's commands may have left running.
struct Leftovers {
    std::vector<pid_t> pids;
    ~Leftovers() {
        for (pid_t pid : pids) ::kill(pid, SIGKILL);
    }
};

const char* const kEndpoints[] = {"/run", "/run-callback", "/run-offload"};

TEST(Subprocess, EveryWayOfStartingAProcessFromAHandlerPassesOnlyTheStandardDescriptors) {
    auto server = process_worker_server();
    // Other clients connected, and a thread of the offload pool busy, meanwhile.
    std::vector<std::unique_ptr<HttpConnection>> others;
    for (int i = 0; i < 3; ++i) {
        others.push_back(std::make_unique<HttpConnection>(server->port(), 10s));
        EXPECT_EQ(others.back()->get("/").result_int(), 200);
    }
    HttpConnection busy(server->port(), 20s);
    busy.send_raw("GET /busy?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n");

    HttpConnection client(server->port(), 10s);
    for (const char* via :
         {"run_process", "spawn_process", "boost_process", "posix_spawn", "fork_exec", "system"}) {
        for (const char* thread : {"loop", "offload"}) {
            auto response = client.get(std::string("/child-fds?via=") + via + "&thread=" + thread);
            ASSERT_EQ(response.result_int(), 200) << via << " " << response.body();
            EXPECT_EQ(listed_descriptors(response.body()), (std::set<int>{0, 1, 2}))
                << "started by " << via << " on the " << thread << ":\n"
                << response.body();
        }
    }
    EXPECT_EQ(busy.read_response().result_int(), 200);
}

TEST(Subprocess, RunProcessGivesOutputAndExitStatusInEveryForm) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    for (const char* endpoint : kEndpoints) {
        auto result = run(client, endpoint,
                          {{"argv", strings({"sh", "-c", "echo out; echo err >&2; exit 3"})}});
        EXPECT_EQ(result["exit_code"].as_int64(), 3) << endpoint;
        EXPECT_EQ(result["term_signal"].as_int64(), 0) << endpoint;
        EXPECT_EQ(result["out"].as_string(), "out\n") << endpoint;
        EXPECT_EQ(result["err"].as_string(), "err\n") << endpoint;
        EXPECT_FALSE(result["timed_out"].as_bool()) << endpoint;
    }
}

TEST(Subprocess, RunProcessSetsEnvironmentWorkingDirectoryAndInput) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    auto result = run(client, "/run",
                      {{"argv", strings({"/bin/sh", "-c", "pwd; echo \"$GREETING\"; cat"})},
                       {"env", strings({"GREETING=hello", "PATH=/usr/bin:/bin"})},
                       {"cwd", "/tmp"},
                       {"input", "from stdin"}});
    EXPECT_EQ(result["exit_code"].as_int64(), 0);
    EXPECT_EQ(result["out"].as_string(), "/tmp\nhello\nfrom stdin");

    // Without "env" it sees the worker's environment (prefork --env passed this one).
    result =
        run(client, "/run", {{"argv", strings({"sh", "-c", "echo $PREFORK_OFFLOAD_THREADS"})}});
    EXPECT_EQ(result["out"].as_string(), "4\n");
}

TEST(Subprocess, AProgramThatCannotStartIsAnErrorNotAResult) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    for (const char* endpoint : kEndpoints) {
        for (const char* program : {"/nonexistent/program", "prefork-no-such-command"}) {
            auto result = run(client, endpoint, {{"argv", strings({program})}}, 500);
            EXPECT_NE(result["error"].as_string().find("No such file or directory"),
                      std::string::npos)
                << endpoint << " " << program << ": " << result["error"].as_string();
        }
    }
    EXPECT_EQ(client.get("/").result_int(), 200);  // the worker is fine
}

// Other code of the worker reaping the child first (waitpid(-1)) leaves its exit status
// unknown: run_process says so with an error, never with a made-up status.
TEST(Subprocess, AProcessReapedByOtherCodeIsAnErrorNotAResult) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    auto result = run(client, "/run-reaped-elsewhere",
                      {{"argv", strings({"sh", "-c", "sleep 2; exit 3"})}}, 500);
    EXPECT_NE(result["error"].as_string().find("No child processes"), std::string::npos)
        << result["error"].as_string();
    EXPECT_EQ(client.get("/").result_int(), 200);  // the worker is fine
}

TEST(Subprocess, ATimeoutKillsTheProcessAndEverythingItStarted) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    for (const char* endpoint : kEndpoints) {
        TempFile file;
        Leftovers leftovers;
        auto started = Clock::now();
        auto result = run(
            client, endpoint,
            {{"argv",
              strings(
                  {"sh", "-c",
                   ("sleep 30 & echo $! > " + file.path + "; echo started; sleep 30").c_str()})},
             {"timeout_ms", 2000}});
        EXPECT_LT(Clock::now() - started, 20s) << endpoint;
        EXPECT_TRUE(result["timed_out"].as_bool()) << endpoint;
        EXPECT_EQ(result["term_signal"].as_int64(), SIGKILL) << endpoint;
        EXPECT_EQ(result["exit_code"].as_int64(), -1) << endpoint;
        EXPECT_EQ(result["out"].as_string(), "started\n") << endpoint;
        pid_t background = file.wait_for_pid();
        ASSERT_GT(background, 0);
        leftovers.pids.push_back(background);
        EXPECT_TRUE(wait_until_gone({background}, 10s))
            << endpoint << ": the process the command left in the background still runs";
    }
}

TEST(Subprocess, OutputBeyondTheLimitIsDroppedAndSaid) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    auto result = run(client, "/run",
                      {{"argv", strings({"sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"})},
                       {"output_limit", 1000}});
    EXPECT_EQ(result["exit_code"].as_int64(), 0);
    EXPECT_EQ(result["out"].as_string().size(), 1000u);
    EXPECT_TRUE(result["truncated"].as_bool());
}

TEST(Subprocess, OutputCanBeTakenPieceByPieceAsItArrives) {
    auto server = process_worker_server();
    HttpConnection client(server->port(), 10s);
    auto result = run(client, "/run",
                      {{"argv", strings({"sh", "-c", "echo a; sleep 1; echo b; sleep 1; echo c"})},
                       {"stream", true}});
    EXPECT_EQ(result["exit_code"].as_int64(), 0);
    EXPECT_EQ(result["out"].as_string(), "a\nb\nc\n");
    EXPECT_GE(result["pieces"].as_int64(), 3);
}

TEST(Subprocess, AClientThatDisconnectsHasItsProcessKilled) {
    auto server = process_worker_server();
    for (const char* endpoint : {"/run", "/run-callback"}) {
        TempFile file;
        Leftovers leftovers;
        std::string body = json::serialize(json::object{
            {"argv",
             strings({"sh", "-c", ("echo $$ > " + file.path + "; exec sleep 30").c_str()})}});
        {
            HttpConnection client(server->port(), 10s);
            client.send_raw(std::string("POST ") + endpoint +
                            " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body);
            pid_t pid = file.wait_for_pid();
            ASSERT_GT(pid, 0) << endpoint << ": the command did not start";
            leftovers.pids.push_back(pid);
            EXPECT_FALSE(process_gone(pid));
        }  // the client hangs up
        EXPECT_TRUE(wait_until_gone(leftovers.pids, 3s))
            << endpoint << ": the process outlived its client";
    }
    EXPECT_EQ(http_get(server->port(), "/").result_int(), 200);
}

// A worker that stops while an offload thread waits for a process: the process is killed,
// the thread wakes, and the worker exits instead of waiting for it forever.
TEST(Subprocess, AStoppingWorkerEndsTheProcessesItWaitsFor) {
    auto server = PreforkServer::with_worker(Loopback{1, {"--graceful-timeout", "1"}},
                                             {PROCESS_WORKER_BINARY});
    TempFile file;
    Leftovers leftovers;
    std::string body = json::serialize(json::object{
        {"argv", strings({"sh", "-c", ("echo $$ > " + file.path + "; exec sleep 30").c_str()})}});
    HttpConnection client(server->port(), 10s);
    client.send_raw(
        "POST /run-offload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body);
    pid_t pid = file.wait_for_pid();
    ASSERT_GT(pid, 0);
    leftovers.pids.push_back(pid);

    server->signal(SIGTERM);
    EXPECT_EQ(server->wait_exit_status(6s), 0) << server->output();
    EXPECT_TRUE(wait_until_gone({pid}, 3s)) << "the process outlived the worker waiting for it";
}

TEST(Subprocess, AHundredConcurrentProcessesOnOneWorkerDoNotBlockIt) {
    auto server = process_worker_server(1);
    pid_t worker = server->children().at(0);
    std::string body = json::serialize(json::object{{"argv", strings({"sleep", "8"})}});
    std::string request =
        "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    std::vector<std::unique_ptr<HttpConnection>> clients;
    auto started = Clock::now();
    for (int i = 0; i < 100; ++i) {
        clients.push_back(std::make_unique<HttpConnection>(server->port(), 60s));
        clients.back()->send_raw(request);
    }
    // All hundred run at the same time...
    ASSERT_TRUE(eventually([&] { return child_pids(worker).size() >= 100; }, 30s))
        << "the processes did not all start";
    // ...and while they run, the worker answers at once (well before they end).
    HttpConnection probe(server->port(), 10s);
    auto probe_started = Clock::now();
    EXPECT_EQ(probe.get("/").result_int(), 200);
    auto probe_took = Clock::now() - probe_started;
    EXPECT_LT(probe_took, 2500ms) << "/ waited for the processes";

    for (auto& client : clients) {
        auto response = client->read_response();
        ASSERT_EQ(response.result_int(), 200) << response.body();
        EXPECT_EQ(json::parse(response.body()).as_object()["exit_code"].as_int64(), 0);
    }
    // They ran side by side: far less than 100 x 5 s.
    EXPECT_LT(Clock::now() - started, 60s);
}

TEST(Subprocess, RunProcessFromManyOffloadThreadsAtOnce) {
    auto server = process_worker_server(1);
    std::vector<std::unique_ptr<HttpConnection>> clients;
    for (int i = 0; i < 16; ++i) {
        std::string body = json::serialize(json::object{
            {"argv", strings({"sh", "-c", ("sleep 0.1; echo " + std::to_string(i)).c_str()})}});
        clients.push_back(std::make_unique<HttpConnection>(server->port(), 20s));
        clients.back()->send_raw(
            "POST /run-offload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
    }
    for (int i = 0; i < 16; ++i) {
        auto response = clients[static_cast<std::size_t>(i)]->read_response();
        ASSERT_EQ(response.result_int(), 200) << response.body();
        auto result = json::parse(response.body()).as_object();
        EXPECT_EQ(result["exit_code"].as_int64(), 0) << response.body();
        EXPECT_EQ(result["out"].as_string(), std::to_string(i) + "\n") << response.body();
    }
}

}  // namespace
}  // namespace prefork::testing

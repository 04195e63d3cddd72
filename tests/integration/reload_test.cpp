// Reload (HUP): a new configuration or a new worker binary, while clients keep going,
// and not one request fails.

#include "client_load.hpp"
#include "http_client.hpp"
#include "prefork_server.hpp"
#include "proc_files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace prefork::testing {
namespace {

namespace fs = std::filesystem;

// A temporary directory with a prefork.toml in it, removed at the end of the test.
class ConfigDir {
  public:
    std::string file() const { return dir_.path("prefork.toml"); }
    std::string path(const std::string& name) const { return dir_.path(name); }
    void write(const std::string& text) const { dir_.write("prefork.toml", text); }

  private:
    TempDir dir_{"prefork-reload"};
};

std::string demo_config(const std::string& extra) {
    return "command = [\"" + demo_binary() + "\"]\n" + extra;
}

std::set<pid_t> as_set(const std::vector<pid_t>& pids) {
    return {pids.begin(), pids.end()};
}

TEST(Reload, ServesEveryRequestWhileWorkersAreReplacedUnderLoad) {
    PreforkServer server(Loopback{2});
    ClientLoad load(server.port(), "/", "Hello, World!", 32, 4, 60s);
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < 20; ++i) {
        server.signal(SIGHUP);
        std::this_thread::sleep_for(250ms);
    }
    std::this_thread::sleep_for(300ms);
    auto result = load.stop();

    EXPECT_EQ(result.failed, 0u) << "first failure: "
                                 << (result.errors.empty() ? "" : result.errors[0]);
    EXPECT_GT(result.ok, 100u);
    // HUPs that arrive during a reload fold into one more reload; several ran (how many
    // depends on how fast workers start on this machine).
    auto started = server.wait_for_lines("reload: starting generation", 2, 10s);
    EXPECT_GE(started.size(), 2u) << server.output();
    auto completed =
        server.wait_for_lines("complete: the old generation has drained", started.size(), 30s);
    EXPECT_GE(completed.size(), started.size()) << server.output();
    EXPECT_EQ(server.wait_for_lines("; replacing it", 1, 0ms).size(), 0u)
        << "a worker died unexpectedly";
    EXPECT_TRUE(server.wait_for_children(2));
}

TEST(Reload, NewEnvironmentIsSeenByTheNewWorkers) {
    ConfigDir dir;
    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n[env]\nGREETING = \"hello\"\n"));
    auto server = PreforkServer::from_config(dir.file(), 2);
    EXPECT_EQ(http_get(server->port(), "/env?name=GREETING").body(), "hello");

    dir.write(
        demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n[env]\nGREETING = \"bonjour\"\n"));
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 1).size(), 1u)
        << server->output();
    EXPECT_EQ(server->wait_for_lines("(env)", 1, 0ms).size(), 1u) << "the log says what changed";
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(http_get(server->port(), "/env?name=GREETING").body(), "bonjour");
    }
}

TEST(Reload, AddingAnAddressServesOnBothAndRemovingItFreesItsPort) {
    ConfigDir dir;
    std::string socket = dir.path("extra.sock");
    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));
    auto server = PreforkServer::from_config(dir.file(), 2);
    auto port = server->port();

    dir.write(demo_config("bind = [\"127.0.0.1:0\", \"unix:" + socket + "\"]\nworkers = 2\n"));
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 1).size(), 1u)
        << server->output();
    EXPECT_EQ(server->ports(), std::vector<std::uint16_t>{port})
        << "the kept address was not rebound";
    EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");
    EXPECT_EQ(HttpConnection(socket).get("/").body(), "Hello, World!");

    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 2).size(), 2u)
        << server->output();
    EXPECT_FALSE(fs::exists(socket)) << "the removed address's socket file is still there";
    EXPECT_THROW(HttpConnection{socket}, boost::system::system_error);
    EXPECT_EQ(http_get(port, "/").body(), "Hello, World!");
}

TEST(Reload, RemovedTcpAddressFreesItsPort) {
    ConfigDir dir;
    PreforkServer probe(Loopback{1});  // finds a free port
    auto spare = probe.port();
    probe.signal(SIGTERM);
    ASSERT_EQ(probe.wait_exit_status(10s), 0);

    std::string two = "bind = [\"127.0.0.1:0\", \"127.0.0.1:" + std::to_string(spare) + "\"]\n";
    dir.write(demo_config(two + "workers = 2\n"));
    auto server = PreforkServer::from_config(dir.file(), 2);
    EXPECT_EQ(http_get(spare, "/").body(), "Hello, World!");

    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 1).size(), 1u);
    EXPECT_TRUE(port_is_free(spare));
}

TEST(Reload, BrokenConfigurationKeepsTheOldWorkersServing) {
    ConfigDir dir;
    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));
    auto server = PreforkServer::from_config(dir.file(), 2);
    auto before = as_set(server->children());

    dir.write("workers = = 2\n");
    server->signal(SIGHUP);
    auto failed = server->wait_for_lines("reload failed, the running configuration stays", 1);
    ASSERT_EQ(failed.size(), 1u) << server->output();
    EXPECT_NE(failed[0].find(dir.file() + ":1"), std::string::npos) << failed[0];
    EXPECT_EQ(as_set(server->children()), before);
    EXPECT_EQ(http_get(server->port(), "/").body(), "Hello, World!");

    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));  // fixed: reloads again
    server->signal(SIGHUP);
    EXPECT_EQ(server->wait_for_lines("complete: the old generation has drained", 1).size(), 1u);
}

TEST(Reload, ReplacedBinaryAtTheSamePathIsPickedUp) {
    ConfigDir dir;
    std::string app = dir.path("app");
    fs::copy_file(demo_binary(), app);
    dir.write("command = [\"" + app +
              "\"]\nbind = [\"127.0.0.1:0\"]\nworkers = 2\n[env]\nCRASH_AFTER_MS = \"600000\"\n");
    auto server = PreforkServer::from_config(dir.file(), 2);
    EXPECT_EQ(http_get(server->port(), "/").body(), "Hello, World!");

    // A deployment replaces the file (a new inode at the same path), then reloads.
    fs::copy_file(crash_worker_binary(), app + ".new");
    fs::rename(app + ".new", app);
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 1).size(), 1u)
        << server->output();
    for (int i = 0; i < 10; ++i) EXPECT_EQ(http_get(server->port(), "/").body(), "still alive");
}

TEST(Reload, ANewGenerationThatKeepsCrashingDoesNotBlockTheNextReload) {
    ConfigDir dir;
    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));
    auto server = PreforkServer::from_config(dir.file(), 2);
    auto old_workers = server->children();

    dir.write(
        "command = [\"/bin/false\"]\nbind = [\"127.0.0.1:0\"]\nworkers = 2\n");  // a broken deploy
    server->signal(SIGHUP);
    ASSERT_GE(server->wait_for_lines("crash loop: next worker in", 2).size(), 2u)
        << server->output();
    EXPECT_EQ(http_get(server->port(), "/").body(), "Hello, World!")
        << "the old workers keep serving";

    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));  // the fix
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 1, 15s).size(), 1u)
        << server->output();
    EXPECT_TRUE(wait_until_gone(old_workers, 5s));
    EXPECT_EQ(http_get(server->port(), "/").body(), "Hello, World!");
}

TEST(Reload, WorkersCountChangeTakesEffect) {
    ConfigDir dir;
    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 2\n"));
    auto server = PreforkServer::from_config(dir.file(), 2);

    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 3\n"));
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 1).size(), 1u);
    EXPECT_EQ(server->wait_for_lines("workers 2 -> 3", 1, 0ms).size(), 1u);
    EXPECT_TRUE(server->wait_for_children(3));

    dir.write(demo_config("bind = [\"127.0.0.1:0\"]\nworkers = 1\n"));
    server->signal(SIGHUP);
    ASSERT_EQ(server->wait_for_lines("complete: the old generation has drained", 2).size(), 2u);
    EXPECT_TRUE(server->wait_for_children(1));
    EXPECT_EQ(http_get(server->port(), "/").body(), "Hello, World!");
}

TEST(Reload, HupThenTermStopsCleanly) {
    PreforkServer server(Loopback{2});
    auto port = server.port();
    auto first = server.children();
    server.signal(SIGHUP);
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait_exit_status(10s), 0) << server.output();
    EXPECT_TRUE(wait_until_gone(first, 1s));
    EXPECT_TRUE(server.children().empty());
    EXPECT_TRUE(port_is_free(port));
}

TEST(Reload, HupDuringAReloadQueuesOneMore) {
    PreforkServer server(Loopback{2, {"--admin", "127.0.0.1:0"}});
    HttpConnection slow(server.port(), 20s);  // keeps the old generation draining for a while
    slow.send_raw("GET /sleep?ms=4000 HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(server.wait_for_requests_received(1));
    server.signal(SIGHUP);
    ASSERT_EQ(server.wait_for_lines("reload: starting generation", 1).size(), 1u);
    server.signal(SIGHUP);  // both during the first reload, which waits for the slow request
    server.signal(SIGHUP);
    EXPECT_EQ(slow.read_response().result_int(), 200);
    auto completed = server.wait_for_lines("complete: the old generation has drained", 2, 30s);
    EXPECT_EQ(completed.size(), 2u) << server.output();
    EXPECT_EQ(server.wait_for_lines("reload: starting generation", 3, 500ms).size(), 2u)
        << "the HUPs during the first reload fold into one";
}

}  // namespace
}  // namespace prefork::testing

#include "options_fixture.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

namespace prefork::master {
namespace {

using OptionsTest = OptionsFixture;

TEST_F(OptionsTest, ReadsEveryOptionAndTheWorkerCommand) {
    auto o = resolve({"--bind",
                      "127.0.0.1:9000",
                      "--bind=unix:/tmp/a.sock",
                      "--workers",
                      "3",
                      "--graceful-timeout",
                      "1.5",
                      "--timeout=7",
                      "--env",
                      "A=b=c",
                      "--pid-file",
                      "/tmp/p",
                      "--log-format",
                      "json",
                      "--max-requests",
                      "1000",
                      "--max-requests-jitter=50",
                      "--log-level",
                      "debug",
                      "--",
                      "app",
                      "--port",
                      "1"});
    ASSERT_EQ(o.binds.size(), 2u);
    EXPECT_EQ(o.binds[0].port, 9000);
    EXPECT_EQ(o.binds[1].path, "/tmp/a.sock");
    EXPECT_EQ(o.workers, 3);
    EXPECT_EQ(o.graceful_timeout, std::chrono::milliseconds(1500));
    EXPECT_EQ(o.timeout, std::chrono::milliseconds(7000));
    EXPECT_EQ(o.worker_env, std::vector<std::string>{"A=b=c"});
    EXPECT_EQ(o.pid_file, "/tmp/p");
    EXPECT_EQ(o.log_format, log::Format::json);
    EXPECT_EQ(o.max_requests, 1000u);
    EXPECT_EQ(o.max_requests_jitter, 50u);
    EXPECT_EQ(o.log_level, log::Level::debug);
    EXPECT_EQ(o.command, (std::vector<std::string>{"app", "--port", "1"}));
}

TEST_F(OptionsTest, DefaultsWhenNothingIsSaid) {
    auto o = resolve({"--", "app"});
    ASSERT_EQ(o.binds.size(), 1u);
    EXPECT_EQ(o.binds[0].to_string(), "127.0.0.1:8080");
    EXPECT_GE(o.workers, 1);
    EXPECT_EQ(o.graceful_timeout, std::chrono::seconds(30));
}

TEST_F(OptionsTest, EnvironmentFillsWhatTheCommandLineLeaves) {
    ::setenv("PREFORK_BIND", "127.0.0.1:1,127.0.0.1:2", 1);
    ::setenv("PREFORK_WORKERS", "5", 1);
    auto o = resolve({"--workers", "2", "--", "app"});
    EXPECT_EQ(o.binds.size(), 2u);
    EXPECT_EQ(o.workers, 2) << "the command line wins over the environment";
}

TEST_F(OptionsTest, ConfigurationFileSaysEverythingIncludingTheCommand) {
    auto path = config(R"(
bind = ["127.0.0.1:9100", "[::1]:9101"]
workers = 3
timeout = 12
graceful_timeout = 2.5
max_requests = 500
max_requests_jitter = 50
log_level = "warning"
command = ["/usr/bin/app", "--serve"]

[env]
GREETING = "hello"
MODE = "test"
)");
    auto o = resolve({"--config", path});  // no "--": the file names the command
    ASSERT_EQ(o.binds.size(), 2u);
    EXPECT_EQ(o.binds[1].to_string(), "[::1]:9101");
    EXPECT_EQ(o.workers, 3);
    EXPECT_EQ(o.timeout, std::chrono::seconds(12));
    EXPECT_EQ(o.graceful_timeout, std::chrono::milliseconds(2500));
    EXPECT_EQ(o.max_requests, 500u);
    EXPECT_EQ(o.max_requests_jitter, 50u);
    EXPECT_EQ(o.log_level, log::Level::warning);
    EXPECT_EQ(o.command, (std::vector<std::string>{"/usr/bin/app", "--serve"}));
    EXPECT_EQ(o.worker_env, (std::vector<std::string>{"GREETING=hello", "MODE=test"}));
}

TEST_F(OptionsTest, CommandLineWinsOverTheFileWhichWinsOverTheEnvironment) {
    auto path =
        config("workers = 3\ntimeout = 9\ncommand = [\"from-file\"]\n[env]\nA = \"file\"\n");
    ::setenv("PREFORK_WORKERS", "7", 1);
    ::setenv("PREFORK_TIMEOUT", "8", 1);
    ::setenv("PREFORK_GRACEFUL_TIMEOUT", "4", 1);
    auto o = resolve({"--config", path, "--workers", "2", "--env", "A=cli", "--", "from-cli"});
    EXPECT_EQ(o.workers, 2);
    EXPECT_EQ(o.timeout, std::chrono::seconds(9));
    EXPECT_EQ(o.graceful_timeout, std::chrono::seconds(4));
    EXPECT_EQ(o.command, std::vector<std::string>{"from-cli"});
    EXPECT_EQ(o.worker_env.back(), "A=cli") << "the last value of a name is the one a worker sees";
}

TEST_F(OptionsTest, ConfigFileFromTheEnvironment) {
    ::setenv("PREFORK_CONFIG", config("workers = 4\ncommand = [\"app\"]\n").c_str(), 1);
    EXPECT_EQ(resolve({}).workers, 4);
}

TEST_F(OptionsTest, BadConfigurationFileNamesTheFileTheLineAndTheProblem) {
    struct Case {
        std::string text, line, problem;
    };
    for (const Case& c : std::vector<Case>{
             {"workers = 2\nworkers = = 3\n", ":2", ""},
             {"command = [\"app\"]\n\nworkers = \"two\"\n", ":3", "workers"},
             {"command = [\"app\"]\nworkers = 0\n", ":2", "workers"},
             {"command = [\"app\"]\nbind = [\"nowhere\"]\n", ":2", "nowhere"},
             {"command = [\"app\"]\nfrobnicate = 1\n", ":2", "unknown key \"frobnicate\""},
             {"command = \"app\"\n", ":1", "command must be an array"},
             {"command = [\"app\"]\n[env]\nA = 1\n", ":3", "env.A must be a string"},
             {"command = [\"app\"]\ntimeout = -1\n", ":2", "timeout"},
         }) {
        auto path = config(c.text);
        try {
            resolve({"--config", path});
            ADD_FAILURE() << "accepted:\n" << c.text;
        } catch (const UsageError& error) {
            std::string what = error.what();
            EXPECT_NE(what.find(path + c.line), std::string::npos) << what;
            EXPECT_NE(what.find(c.problem), std::string::npos) << what;
            EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
        }
    }
}

TEST_F(OptionsTest, MissingConfigurationFileIsAUsageError) {
    EXPECT_THROW(resolve({"--config", "/nonexistent/prefork.toml"}), UsageError);
}

TEST_F(OptionsTest, HelpAndVersion) {
    EXPECT_EQ(parse({"--help"}).action, Action::help);
    EXPECT_EQ(parse({"--version"}).action, Action::version);
}

TEST_F(OptionsTest, MistakesAreUsageErrors) {
    for (auto args :
         std::vector<std::vector<std::string>>{{"--"},
                                               {},
                                               {"--workers", "0", "--", "app"},
                                               {"--workers", "two", "--", "app"},
                                               {"--graceful-timeout", "-1", "--", "app"},
                                               {"--bind", "nonsense", "--", "app"},
                                               {"--env", "NOVALUE", "--", "app"},
                                               {"--log-format", "xml", "--", "app"},
                                               {"--max-requests", "-5", "--", "app"},
                                               {"--log-level", "loud", "--", "app"},
                                               {"--timeout", "0.5", "--", "app"},
                                               {"--graceful-timeout", "0.0001", "--", "app"},
                                               {"--frobnicate", "--", "app"},
                                               {"--workers"}}) {
        EXPECT_THROW(resolve(args), UsageError);
    }
}

TEST_F(OptionsTest, MistakeNamesTheOptionThatCarriedIt) {
    try {
        resolve({"--workers", "two", "--", "app"});
        FAIL();
    } catch (const UsageError& error) {
        EXPECT_STREQ(
            error.what(),
            "invalid value \"two\" for --workers (expected a whole number from 1 to 1024)");
    }
}

}  // namespace
}  // namespace prefork::master

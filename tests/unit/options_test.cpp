#include "options.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace prefork::master {
namespace {

ParsedCommandLine parse(std::vector<std::string> args) {
    std::vector<char*> argv;
    static std::string program = "prefork";
    argv.push_back(program.data());
    for (auto& arg : args) argv.push_back(arg.data());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

class Options : public ::testing::Test {
  protected:
    void SetUp() override {
        for (const char* name :
             {"PREFORK_BIND", "PREFORK_WORKERS", "PREFORK_TIMEOUT", "PREFORK_GRACEFUL_TIMEOUT",
              "PREFORK_MAX_REQUESTS", "PREFORK_MAX_REQUESTS_JITTER", "PREFORK_LOG_LEVEL"}) {
            ::unsetenv(name);
        }
    }
    void TearDown() override { SetUp(); }
};

TEST_F(Options, ReadsEveryOptionAndTheWorkerCommand) {
    auto parsed = parse({"--bind",
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
    const auto& o = parsed.options;
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

TEST_F(Options, DefaultsWhenNothingIsSaid) {
    auto o = parse({"--", "app"}).options;
    ASSERT_EQ(o.binds.size(), 1u);
    EXPECT_EQ(o.binds[0].to_string(), "127.0.0.1:8080");
    EXPECT_GE(o.workers, 1);
    EXPECT_EQ(o.graceful_timeout, std::chrono::seconds(30));
}

TEST_F(Options, EnvironmentFillsWhatTheCommandLineLeaves) {
    ::setenv("PREFORK_BIND", "127.0.0.1:1,127.0.0.1:2", 1);
    ::setenv("PREFORK_WORKERS", "5", 1);
    auto o = parse({"--workers", "2", "--", "app"}).options;
    EXPECT_EQ(o.binds.size(), 2u);
    EXPECT_EQ(o.workers, 2) << "the command line wins over the environment";
}

TEST_F(Options, HelpAndVersion) {
    EXPECT_EQ(parse({"--help"}).action, Action::help);
    EXPECT_EQ(parse({"--version"}).action, Action::version);
}

TEST_F(Options, MistakesAreUsageErrors) {
    for (auto args :
         std::vector<std::vector<std::string>>{{
                                                   "--",
                                               },
                                               {},
                                               {"--workers", "0", "--", "app"},
                                               {"--workers", "two", "--", "app"},
                                               {"--graceful-timeout", "-1", "--", "app"},
                                               {"--bind", "nonsense", "--", "app"},
                                               {"--env", "NOVALUE", "--", "app"},
                                               {"--log-format", "xml", "--", "app"},
                                               {"--max-requests", "-5", "--", "app"},
                                               {"--log-level", "loud", "--", "app"},
                                               {"--frobnicate", "--", "app"},
                                               {"--workers"}}) {
        EXPECT_THROW(parse(args), UsageError);
    }
}

}  // namespace
}  // namespace prefork::master

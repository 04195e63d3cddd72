// The state an upgrading master hands to its new image: what goes in comes out, and a
// state that is not one is refused with a reason.

#include "upgrade_state.hpp"
#include "supervision_record.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

namespace prefork::master {
namespace {

namespace json = boost::json;

// Runs take_state_from_environment on a memfd holding `text`.
std::optional<json::object> take(const std::string& text) {
    UniqueFd fd(::memfd_create("test-state", 0));
    EXPECT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ::setenv(upgrade::kStateFdEnv, std::to_string(fd.release()).c_str(), 1);
    return upgrade::take_state_from_environment();  // closes the descriptor
}

TEST(UpgradeState, SettingsComeOutAsTheyWentIn) {
    Settings settings;
    settings.add("bind", {"127.0.0.1:8080", "--bind", ""});
    settings.add("bind", {"unix:/run/app.sock", "bind", "/etc/prefork.toml:2"});
    settings.add("workers", {"4", "PREFORK_WORKERS", ""});
    settings.command = std::vector<std::string>{"/usr/bin/app", "--port", "é \"quoted\""};
    Settings back =
        upgrade::settings_from_json(json::parse(json::serialize(upgrade::to_json(settings))));
    ASSERT_NE(back.find("bind"), nullptr);
    ASSERT_EQ(back.find("bind")->size(), 2u);
    EXPECT_EQ((*back.find("bind"))[1].value, "unix:/run/app.sock");
    EXPECT_EQ((*back.find("bind"))[1].location, "/etc/prefork.toml:2");
    EXPECT_EQ((*back.find("workers"))[0].name, "PREFORK_WORKERS");
    EXPECT_EQ(back.command, settings.command);

    Settings without_command;
    EXPECT_FALSE(upgrade::settings_from_json(upgrade::to_json(without_command)).command);
}

TEST(UpgradeState, TheRecordComesOutWithEveryCounter) {
    SupervisionRecord record;
    control::WorkerCounters last;
    last.requests = 41;
    last.bytes_out = 1 << 20;
    last.durations[3] = 40;
    last.connections_accepted = 7;
    record.worker_started();
    record.worker_exited(last, "upgrade", 3);
    record.reload_started();
    record.event("worker 12 (generation 1) killed by SIGSEGV after 3.0s");

    SupervisionRecord restored;
    restored.restore(json::parse(json::serialize(record.save())).as_object());
    StatusReport before, after;
    record.fill(before);
    restored.fill(after);
    EXPECT_EQ(after.totals.requests, 41u);
    EXPECT_EQ(after.totals.bytes_out, before.totals.bytes_out);
    EXPECT_EQ(after.totals.durations, before.totals.durations);
    EXPECT_EQ(after.slots.at(3).connections_accepted, 7u);
    EXPECT_EQ(after.worker_starts, 1u);
    EXPECT_EQ(after.worker_exits.at("upgrade"), 1u);
    EXPECT_EQ(after.reloads, 1u);
    ASSERT_EQ(after.events.size(), 1u);
    EXPECT_EQ(after.events[0].text, before.events[0].text);
    EXPECT_EQ(after.events[0].time, before.events[0].time);
}

TEST(UpgradeState, WithoutTheVariableThisIsNoUpgrade) {
    ::unsetenv(upgrade::kStateFdEnv);
    EXPECT_FALSE(upgrade::take_state_from_environment());
}

TEST(UpgradeState, TheStateIsReadOnceAndTheVariableRemoved) {
    auto state = take(R"({"format": 1, "version": "0.1.0"})");
    ASSERT_TRUE(state);
    EXPECT_EQ(upgrade::string_at(*state, "version"), "0.1.0");
    EXPECT_EQ(::getenv(upgrade::kStateFdEnv), nullptr) << "a worker would see it";
}

TEST(UpgradeState, WhatIsNoStateIsRefusedWithAReason) {
    auto refused = [](const std::string& text) {
        try {
            take(text);
        } catch (const upgrade::StateError& error) {
            return std::string(error.what());
        }
        return std::string("accepted");
    };
    EXPECT_EQ(refused("not json"), "the upgrade state is not a JSON object");
    EXPECT_EQ(refused("[1, 2]"), "the upgrade state is not a JSON object");
    EXPECT_EQ(refused("{}"), "no field \"format\"");
    EXPECT_EQ(refused(R"({"format": 2})"),
              "the upgrade state is of format 2, this prefork reads formats 1 to 1");
    EXPECT_EQ(refused(R"({"format": "1"})"), "field \"format\" not an integer");

    ::setenv(upgrade::kStateFdEnv, "seven", 1);
    EXPECT_THROW(upgrade::take_state_from_environment(), upgrade::StateError);
    ::setenv(upgrade::kStateFdEnv, "2", 1);  // stderr: never a state
    EXPECT_THROW(upgrade::take_state_from_environment(), upgrade::StateError);
}

TEST(UpgradeState, ADescriptorThatDidNotCrossIsRefused) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_THROW(upgrade::take_descriptor(json::value(fds[0]), "a listening socket"),
                 upgrade::StateError);
    EXPECT_THROW(upgrade::take_descriptor(json::value("3"), "a listening socket"),
                 upgrade::StateError);
}

}  // namespace
}  // namespace prefork::master

#include <prefork/common/control_protocol.hpp>

#include <gtest/gtest.h>

namespace prefork::control {
namespace {

TEST(ControlProtocol, ListenersRoundTrip) {
    Listeners sent{{"127.0.0.1:8080", "unix:/run/app.sock"}, 3, 12'500, 1000};
    auto decoded = std::get<Listeners>(decode(encode(sent)));
    EXPECT_EQ(decoded.names, sent.names);
    EXPECT_EQ(decoded.generation, 3);
    EXPECT_EQ(decoded.graceful_timeout_ms, 12'500);
    EXPECT_EQ(decoded.max_requests, 1000u);
}

TEST(ControlProtocol, EveryMessageRoundTrips) {
    EXPECT_EQ(std::get<Drain>(decode(encode(Drain{1500}))).timeout_ms, 1500);
    EXPECT_EQ(std::get<Ready>(decode(encode(Ready{4242}))).pid, 4242);
    Heartbeat beat{10, 2, 3000, 4000};
    auto got = std::get<Heartbeat>(decode(encode(beat)));
    EXPECT_EQ(got.requests, 10u);
    EXPECT_EQ(got.active_connections, 2u);
    EXPECT_EQ(got.bytes_in, 3000u);
    EXPECT_EQ(got.bytes_out, 4000u);
    EXPECT_TRUE(std::holds_alternative<Draining>(decode(encode(Draining{}))));
}

TEST(ControlProtocol, MessagesAreOneJsonObjectWithAType) {
    EXPECT_EQ(encode(Drain{5}), R"({"type":"drain","timeout_ms":5})");
}

TEST(ControlProtocol, RejectsGarbage) {
    for (const char* garbage :
         {"", "not json", "[]", "42", R"({"no_type":1})", R"({"type":5})", R"({"type":"reboot"})",
          R"({"type":"listeners"})", R"({"type":"listeners","names":"a"})",
          R"({"type":"listeners","names":[1]})", R"({"type":"drain"})",
          R"({"type":"drain","timeout_ms":"soon"})", R"({"type":"heartbeat","requests":-1})",
          "{\"type\":\"ready\""}) {
        EXPECT_THROW(decode(garbage), ProtocolError) << garbage;
    }
}

}  // namespace
}  // namespace prefork::control

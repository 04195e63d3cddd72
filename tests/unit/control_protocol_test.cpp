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
    EXPECT_FALSE(std::get<Drain>(decode(encode(Drain{1500}))).hand_off);
    EXPECT_TRUE(std::get<Drain>(decode(encode(Drain{1500, true}))).hand_off);
    EXPECT_EQ(std::get<Ready>(decode(encode(Ready{4242}))).pid, 4242);
    // A user-space address of x86-64 or arm64 (below 2^48), as a JSON number.
    EXPECT_EQ(std::get<Ready>(decode(encode(Ready{1, 0x7ffd12345678}))).requests_in_flight,
              0x7ffd12345678u);
    EXPECT_EQ(std::get<Ready>(decode(R"({"type":"ready","pid":7})")).requests_in_flight, 0u)
        << "a worker that does not say where its requests are";
    Heartbeat beat{10, 2, 3000, 4000};
    auto got = std::get<Heartbeat>(decode(encode(beat)));
    EXPECT_EQ(got.requests, 10u);
    EXPECT_EQ(got.active_connections, 2u);
    EXPECT_EQ(got.bytes_in, 3000u);
    EXPECT_EQ(got.bytes_out, 4000u);
    EXPECT_TRUE(std::holds_alternative<Draining>(decode(encode(Draining{}))));
    EXPECT_EQ(std::get<HeartbeatInterval>(decode(encode(HeartbeatInterval{100}))).interval_ms, 100);
    EXPECT_FALSE(std::get<Accepting>(decode(encode(Accepting{false}))).accepting);
    EXPECT_TRUE(std::get<Accepting>(decode(encode(Accepting{true}))).accepting);
    EXPECT_EQ(std::get<Shed>(decode(encode(Shed{14}))).connections, 14u);
    EXPECT_TRUE(std::get<Adopt>(decode(encode(Adopt{"", true}))).fresh);
    EXPECT_FALSE(std::get<Adopt>(decode(encode(Adopt{"GET", false}))).fresh);
    EXPECT_TRUE(std::get<Adopt>(decode(encode(Adopt{"", true, true}))).tls);
    EXPECT_FALSE(std::get<Adopt>(decode(encode(Adopt{"GET", false}))).tls);
    EXPECT_TRUE(std::get<HandOff>(decode(encode(HandOff{"", true}))).tls);
    EXPECT_FALSE(std::get<HandOff>(decode(encode(HandOff{"GET"}))).tls);
    // A TLS client handed over before its handshake has no bytes: any would be records of a
    // session the adopter knows nothing of.
    EXPECT_THROW(decode(R"({"type":"adopt","bytes":"R0VU","tls":true})"), ProtocolError);
    EXPECT_THROW(decode(R"({"type":"hand_off","bytes":"R0VU","tls":true})"), ProtocolError);
    Heartbeat accepted;
    accepted.connections_accepted = 9;
    EXPECT_EQ(std::get<Heartbeat>(decode(encode(accepted))).connections_accepted, 9u);
    Heartbeat tls;
    tls.tls_handshakes = 5;
    tls.tls_sessions_resumed = 3;
    tls.tls_handshake_failures = 2;
    auto tls_got = std::get<Heartbeat>(decode(encode(tls)));
    EXPECT_EQ(tls_got.tls_handshakes, 5u);
    EXPECT_EQ(tls_got.tls_sessions_resumed, 3u);
    EXPECT_EQ(tls_got.tls_handshake_failures, 2u);
    auto credentials = std::get<TlsCredentials>(
        decode(encode(TlsCredentials{"-----BEGIN CERTIFICATE-----\n", "key\n", "ECDHE"})));
    EXPECT_EQ(credentials.certificate_chain, "-----BEGIN CERTIFICATE-----\n");
    EXPECT_EQ(credentials.private_key, "key\n");
    EXPECT_EQ(credentials.ciphers, "ECDHE");
    std::string key(80, '\0');
    for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<char>(i * 7);
    auto keys = std::get<TicketKeys>(decode(encode(TicketKeys{{key, key}, 3600})));
    EXPECT_EQ(keys.keys, (std::vector<std::string>{key, key}));
    EXPECT_EQ(keys.lifetime_s, 3600);
}

TEST(ControlProtocol, TicketKeysMustBeEightyBytesAndAtLeastOne) {
    EXPECT_THROW(decode(R"({"type":"ticket_keys","keys":[]})"), ProtocolError);
    EXPECT_THROW(decode(R"({"type":"ticket_keys","keys":["AAAA"]})"), ProtocolError);
    EXPECT_THROW(decode(R"({"type":"ticket_keys"})"), ProtocolError);
    EXPECT_THROW(decode(R"({"type":"tls_credentials","certificate_chain":1,"private_key":"",)"
                        R"("ciphers":""})"),
                 ProtocolError);
}

TEST(ControlProtocol, MessagesAreOneJsonObjectWithAType) {
    EXPECT_EQ(encode(Drain{5}), R"({"type":"drain","timeout_ms":5,"hand_off":false})");
    EXPECT_EQ(encode(HandOff{"GET"}), R"({"type":"hand_off","bytes":"R0VU"})");
    EXPECT_EQ(encode(Adopt{""}), R"({"type":"adopt","bytes":""})");
}

// The bytes of a request are any bytes: every value, every length's padding.
TEST(ControlProtocol, HandedOffBytesRoundTripWhateverTheyAre) {
    std::string every;
    for (int i = 0; i < 256; ++i) every += static_cast<char>(i);
    for (std::size_t length = 0; length <= every.size(); length += length < 8 ? 1 : 61) {
        std::string bytes = every.substr(0, length);
        EXPECT_EQ(std::get<HandOff>(decode(encode(HandOff{bytes}))).bytes, bytes) << length;
        EXPECT_EQ(std::get<Adopt>(decode(encode(Adopt{bytes}))).bytes, bytes) << length;
    }
    EXPECT_EQ(std::get<HandOff>(decode(R"({"type":"hand_off","bytes":"R0VUIC8="})")).bytes,
              "GET /");
}

TEST(ControlProtocol, HandOffCountsRoundTrip) {
    Heartbeat beat;
    beat.connections_handed_off = 7;
    beat.connections_adopted = 5;
    beat.handoff_fallbacks = 2;
    auto got = std::get<Heartbeat>(decode(encode(beat)));
    EXPECT_EQ(got.connections_handed_off, 7u);
    EXPECT_EQ(got.connections_adopted, 5u);
    EXPECT_EQ(got.handoff_fallbacks, 2u);
}

TEST(ControlProtocol, RejectsGarbage) {
    for (const char* garbage : {"",
                                "not json",
                                "[]",
                                "42",
                                R"({"no_type":1})",
                                R"({"type":5})",
                                R"({"type":"reboot"})",
                                R"({"type":"listeners"})",
                                R"({"type":"listeners","names":"a"})",
                                R"({"type":"listeners","names":[1]})",
                                R"({"type":"drain"})",
                                R"({"type":"drain","timeout_ms":"soon"})",
                                R"({"type":"heartbeat","requests":-1})",
                                R"({"type":"drain","timeout_ms":1,"hand_off":1})",
                                R"({"type":"hand_off"})",
                                R"({"type":"hand_off","bytes":5})",
                                R"({"type":"hand_off","bytes":"abc"})",
                                R"({"type":"adopt","bytes":"ab=c"})",
                                R"({"type":"adopt","bytes":"a==="})",
                                R"({"type":"adopt","bytes":"ab!c"})",
                                R"({"type":"heartbeat_interval"})",
                                R"({"type":"accepting"})",
                                R"({"type":"accepting","accepting":0})",
                                R"({"type":"shed"})",
                                R"({"type":"shed","connections":-2})",
                                R"({"type":"heartbeat_interval","interval_ms":0})",
                                "{\"type\":\"ready\""}) {
        EXPECT_THROW(decode(garbage), ProtocolError) << garbage;
    }
}

}  // namespace
}  // namespace prefork::control

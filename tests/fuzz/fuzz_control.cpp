// libFuzzer harness: any datagram into the control protocol's decoder. decode() must
// either throw ProtocolError (and nothing else) or return a message that survives encode
// and decode unchanged.

#include <prefork/common/control_protocol.hpp>

// Boost.JSON compiled into the harness, with the fuzzer's instrumentation.
#include <boost/json/src.hpp>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

using namespace prefork::control;

// Boost.JSON 1.81 parses numbers "imprecisely": a double it serializes in its shortest
// round-trip form may parse back one or two units in the last place away (about one
// double in ten). So a double counts as the same within 4 ULP; more would be a real bug.
bool same_double(double a, double b) {
    if (a == b || (std::isnan(a) && std::isnan(b))) return true;
    if (!std::isfinite(a) || !std::isfinite(b) || std::signbit(a) != std::signbit(b)) return false;
    auto bits_a = std::bit_cast<std::int64_t>(a), bits_b = std::bit_cast<std::int64_t>(b);
    return (bits_a > bits_b ? bits_a - bits_b : bits_b - bits_a) <= 4;
}

bool same_counters(const WorkerCounters& a, const WorkerCounters& b) {
    return a.requests == b.requests && a.active_connections == b.active_connections &&
           a.connections_accepted == b.connections_accepted && a.queue_times == b.queue_times &&
           same_double(a.queue_seconds_sum, b.queue_seconds_sum) && a.bytes_in == b.bytes_in &&
           a.bytes_out == b.bytes_out && a.responses == b.responses && a.durations == b.durations &&
           a.log_lines_dropped == b.log_lines_dropped &&
           a.connections_handed_off == b.connections_handed_off &&
           a.connections_adopted == b.connections_adopted &&
           a.handoff_fallbacks == b.handoff_fallbacks && a.tls_handshakes == b.tls_handshakes &&
           a.tls_sessions_resumed == b.tls_sessions_resumed &&
           a.tls_handshake_failures == b.tls_handshake_failures &&
           same_double(a.duration_seconds_sum, b.duration_seconds_sum);
}

struct Same {
    bool operator()(const Listeners& a, const Listeners& b) const {
        return a.names == b.names && a.generation == b.generation &&
               a.graceful_timeout_ms == b.graceful_timeout_ms && a.max_requests == b.max_requests;
    }
    bool operator()(const Drain& a, const Drain& b) const {
        return a.timeout_ms == b.timeout_ms && a.hand_off == b.hand_off;
    }
    bool operator()(const HandOff& a, const HandOff& b) const {
        return a.bytes == b.bytes && a.tls == b.tls;
    }
    bool operator()(const Adopt& a, const Adopt& b) const {
        return a.bytes == b.bytes && a.fresh == b.fresh && a.tls == b.tls;
    }
    bool operator()(const HeartbeatInterval& a, const HeartbeatInterval& b) const {
        return a.interval_ms == b.interval_ms;
    }
    bool operator()(const Ready& a, const Ready& b) const {
        return a.pid == b.pid && a.requests_in_flight == b.requests_in_flight;
    }
    bool operator()(const Accepting& a, const Accepting& b) const {
        return a.accepting == b.accepting;
    }
    bool operator()(const Shed& a, const Shed& b) const { return a.connections == b.connections; }
    bool operator()(const TlsCredentials& a, const TlsCredentials& b) const {
        return a.certificate_chain == b.certificate_chain && a.private_key == b.private_key &&
               a.ciphers == b.ciphers;
    }
    bool operator()(const TicketKeys& a, const TicketKeys& b) const {
        return a.keys == b.keys && a.lifetime_s == b.lifetime_s;
    }
    bool operator()(const Heartbeat& a, const Heartbeat& b) const { return same_counters(a, b); }
    bool operator()(const Draining&, const Draining&) const { return true; }
    bool operator()(const ReopenLogs&, const ReopenLogs&) const { return true; }
    template <class A, class B>
    bool operator()(const A&, const B&) const {
        return false;
    }
};

[[noreturn]] void fail(const char* what, std::string_view first, std::string_view second) {
    std::fprintf(stderr, "fuzz_control: %s\n  first:  %.*s\n  second: %.*s\n", what,
                 static_cast<int>(first.size()), first.data(), static_cast<int>(second.size()),
                 second.data());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view datagram(reinterpret_cast<const char*>(data), size);
    Message message;
    try {
        message = decode(datagram);
    } catch (const ProtocolError&) {
        return 0;  // refused, as it should be: anything else thrown escapes and is a finding
    }

    std::string encoded = encode(message);
    Message again;
    try {
        again = decode(encoded);
    } catch (const ProtocolError& error) {
        fail("the encoder's output does not decode", encoded, error.what());
    }
    if (message.index() != again.index() || !std::visit(Same{}, message, again)) {
        fail("a message changed on the way through encode and decode", encoded, encode(again));
    }
    return 0;
}

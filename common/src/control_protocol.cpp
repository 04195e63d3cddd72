#include <prefork/common/control_protocol.hpp>

#include <boost/json.hpp>

#include <cmath>
#include <cstring>
#include <type_traits>

namespace prefork::control {
namespace json = boost::json;
namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Bytes of a request are not UTF-8 text: they travel in JSON as base64 (RFC 4648).
std::string to_base64(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        std::uint32_t group = static_cast<unsigned char>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) group |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        if (i + 2 < bytes.size()) group |= static_cast<unsigned char>(bytes[i + 2]);
        out += kBase64[(group >> 18) & 63];
        out += kBase64[(group >> 12) & 63];
        out += i + 1 < bytes.size() ? kBase64[(group >> 6) & 63] : '=';
        out += i + 2 < bytes.size() ? kBase64[group & 63] : '=';
    }
    return out;
}

std::string from_base64(std::string_view text) {
    if (text.size() % 4 != 0) throw ProtocolError("field \"bytes\" is not base64");
    auto value = [](char c) -> int {
        if (const char* at = std::strchr(kBase64, c); at != nullptr && c != '\0') {
            return static_cast<int>(at - kBase64);
        }
        return -1;
    };
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        bool last = i + 4 == text.size();
        int pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
        std::uint32_t group = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            int v = j >= 4 - static_cast<std::size_t>(pad) ? 0 : value(text[i + j]);
            if (v < 0) throw ProtocolError("field \"bytes\" is not base64");
            group = group << 6 | static_cast<std::uint32_t>(v);
        }
        out += static_cast<char>(group >> 16);
        if (pad < 2) out += static_cast<char>((group >> 8) & 255);
        if (pad < 1) out += static_cast<char>(group & 255);
    }
    return out;
}

struct Encoder {
    json::object operator()(const Listeners& m) const {
        json::array names;
        for (const auto& name : m.names) names.emplace_back(name);
        return {{"type", "listeners"},
                {"generation", m.generation},
                {"graceful_timeout_ms", m.graceful_timeout_ms},
                {"max_requests", m.max_requests},
                {"names", std::move(names)}};
    }
    json::object operator()(const Drain& m) const {
        return {{"type", "drain"}, {"timeout_ms", m.timeout_ms}, {"hand_off", m.hand_off}};
    }
    json::object operator()(const HandOff& m) const {
        json::object object{{"type", "hand_off"}, {"bytes", to_base64(m.bytes)}};
        if (m.tls) object["tls"] = true;
        return object;
    }
    json::object operator()(const Adopt& m) const {
        json::object object{{"type", "adopt"}, {"bytes", to_base64(m.bytes)}};
        if (m.fresh) object["fresh"] = true;
        if (m.tls) object["tls"] = true;
        return object;
    }
    json::object operator()(const Ready& m) const {
        return {{"type", "ready"}, {"pid", m.pid}, {"requests_in_flight", m.requests_in_flight}};
    }
    json::object operator()(const Heartbeat& m) const {
        return {{"type", "heartbeat"},
                {"requests", m.requests},
                {"active_connections", m.active_connections},
                {"connections_accepted", m.connections_accepted},
                {"queue_times", json::value_from(m.queue_times)},
                {"queue_seconds_sum", m.queue_seconds_sum},
                {"bytes_in", m.bytes_in},
                {"bytes_out", m.bytes_out},
                {"responses", json::value_from(m.responses)},
                {"durations", json::value_from(m.durations)},
                {"duration_seconds_sum", m.duration_seconds_sum},
                {"log_lines_dropped", m.log_lines_dropped},
                {"connections_handed_off", m.connections_handed_off},
                {"connections_adopted", m.connections_adopted},
                {"handoff_fallbacks", m.handoff_fallbacks},
                {"tls_handshakes", m.tls_handshakes},
                {"tls_sessions_resumed", m.tls_sessions_resumed},
                {"tls_handshake_failures", m.tls_handshake_failures}};
    }
    json::object operator()(const Draining&) const { return {{"type", "draining"}}; }
    json::object operator()(const Shed& m) const {
        return {{"type", "shed"}, {"connections", m.connections}};
    }
    json::object operator()(const Accepting& m) const {
        return {{"type", "accepting"}, {"accepting", m.accepting}};
    }
    json::object operator()(const ReopenLogs&) const { return {{"type", "reopen_logs"}}; }
    json::object operator()(const TlsCredentials& m) const {
        return {{"type", "tls_credentials"},
                {"certificate_chain", m.certificate_chain},
                {"private_key", m.private_key},
                {"ciphers", m.ciphers}};
    }
    json::object operator()(const TicketKeys& m) const {
        json::array keys;
        for (const auto& key : m.keys) keys.emplace_back(to_base64(key));
        return {{"type", "ticket_keys"}, {"keys", std::move(keys)}, {"lifetime_s", m.lifetime_s}};
    }
    json::object operator()(const HeartbeatInterval& m) const {
        return {{"type", "heartbeat_interval"}, {"interval_ms", m.interval_ms}};
    }
};

const json::value& field(const json::object& object, std::string_view name) {
    const json::value* value = object.if_contains(name);
    if (value == nullptr) throw ProtocolError("missing field \"" + std::string(name) + "\"");
    return *value;
}

template <class T>
T number(const json::object& object, std::string_view name) {
    const json::value& value = field(object, name);
    boost::system::error_code ec;
    T result = value.to_number<T>(ec);
    if (ec) throw ProtocolError("field \"" + std::string(name) + "\" is not a valid number");
    if constexpr (std::is_floating_point_v<T>) {
        // Boost.JSON reads 1e400 as infinity, which encode() could not write back as JSON.
        if (!std::isfinite(result)) {
            throw ProtocolError("field \"" + std::string(name) + "\" is not a finite number");
        }
    }
    return result;
}

template <class T>
T optional_number(const json::object& object, std::string_view name) {
    return object.contains(name) ? number<T>(object, name) : T{};
}

bool optional_bool(const json::object& object, std::string_view name) {
    const json::value* value = object.if_contains(name);
    if (value == nullptr) return false;
    if (!value->is_bool())
        throw ProtocolError("field \"" + std::string(name) + "\" is not true or false");
    return value->get_bool();
}

std::string bytes_field(const json::object& object) {
    const json::value& value = field(object, "bytes");
    if (!value.is_string()) throw ProtocolError("field \"bytes\" is not a string");
    return from_base64(value.get_string());
}

std::string string_field(const json::object& object, std::string_view name) {
    const json::value& value = field(object, name);
    if (!value.is_string()) {
        throw ProtocolError("field \"" + std::string(name) + "\" is not a string");
    }
    return std::string(value.get_string());
}

inline constexpr std::size_t kTicketKeySize = 80;

TicketKeys decode_ticket_keys(const json::object& object) {
    const json::value& keys = field(object, "keys");
    if (!keys.is_array() || keys.get_array().empty()) {
        throw ProtocolError("field \"keys\" is not a non-empty array");
    }
    TicketKeys m;
    m.lifetime_s = optional_number<std::int64_t>(object, "lifetime_s");
    for (const json::value& key : keys.get_array()) {
        if (!key.is_string()) throw ProtocolError("a ticket key is not a string");
        m.keys.push_back(from_base64(key.get_string()));
        if (m.keys.back().size() != kTicketKeySize) {
            throw ProtocolError("a ticket key is not 80 bytes");
        }
    }
    return m;
}

Listeners decode_listeners(const json::object& object) {
    Listeners m;
    m.generation = optional_number<int>(object, "generation");
    if (object.contains("graceful_timeout_ms")) {
        m.graceful_timeout_ms = number<std::int64_t>(object, "graceful_timeout_ms");
    }
    m.max_requests = optional_number<std::uint64_t>(object, "max_requests");
    const json::value& names = field(object, "names");
    if (!names.is_array()) throw ProtocolError("field \"names\" is not an array");
    for (const json::value& name : names.get_array()) {
        if (!name.is_string()) throw ProtocolError("a listener name is not a string");
        m.names.emplace_back(name.get_string());
    }
    return m;
}

template <std::size_t N>
void optional_counts(const json::object& object, std::string_view name,
                     std::array<std::uint64_t, N>& out) {
    const json::value* value = object.if_contains(name);
    if (value == nullptr) return;
    if (!value->is_array() || value->get_array().size() != N) {
        throw ProtocolError("field \"" + std::string(name) + "\" is not an array of " +
                            std::to_string(N) + " numbers");
    }
    for (std::size_t i = 0; i < N; ++i) {
        boost::system::error_code ec;
        out[i] = value->get_array()[i].to_number<std::uint64_t>(ec);
        if (ec) throw ProtocolError("field \"" + std::string(name) + "\" holds a non-count");
    }
}

Heartbeat decode_heartbeat(const json::object& object) {
    Heartbeat m;
    m.requests = optional_number<std::uint64_t>(object, "requests");
    m.active_connections = optional_number<std::uint64_t>(object, "active_connections");
    m.connections_accepted = optional_number<std::uint64_t>(object, "connections_accepted");
    optional_counts(object, "queue_times", m.queue_times);
    m.queue_seconds_sum = optional_number<double>(object, "queue_seconds_sum");
    m.bytes_in = optional_number<std::uint64_t>(object, "bytes_in");
    m.bytes_out = optional_number<std::uint64_t>(object, "bytes_out");
    optional_counts(object, "responses", m.responses);
    optional_counts(object, "durations", m.durations);
    m.duration_seconds_sum = optional_number<double>(object, "duration_seconds_sum");
    m.log_lines_dropped = optional_number<std::uint64_t>(object, "log_lines_dropped");
    m.connections_handed_off = optional_number<std::uint64_t>(object, "connections_handed_off");
    m.connections_adopted = optional_number<std::uint64_t>(object, "connections_adopted");
    m.handoff_fallbacks = optional_number<std::uint64_t>(object, "handoff_fallbacks");
    m.tls_handshakes = optional_number<std::uint64_t>(object, "tls_handshakes");
    m.tls_sessions_resumed = optional_number<std::uint64_t>(object, "tls_sessions_resumed");
    m.tls_handshake_failures = optional_number<std::uint64_t>(object, "tls_handshake_failures");
    return m;
}

}  // namespace

void WorkerCounters::add(const WorkerCounters& other) {
    requests += other.requests;
    active_connections += other.active_connections;
    connections_accepted += other.connections_accepted;
    for (std::size_t i = 0; i < queue_times.size(); ++i) queue_times[i] += other.queue_times[i];
    queue_seconds_sum += other.queue_seconds_sum;
    bytes_in += other.bytes_in;
    bytes_out += other.bytes_out;
    for (std::size_t i = 0; i < responses.size(); ++i) responses[i] += other.responses[i];
    for (std::size_t i = 0; i < durations.size(); ++i) durations[i] += other.durations[i];
    duration_seconds_sum += other.duration_seconds_sum;
    log_lines_dropped += other.log_lines_dropped;
    connections_handed_off += other.connections_handed_off;
    connections_adopted += other.connections_adopted;
    handoff_fallbacks += other.handoff_fallbacks;
    tls_handshakes += other.tls_handshakes;
    tls_sessions_resumed += other.tls_sessions_resumed;
    tls_handshake_failures += other.tls_handshake_failures;
}

std::string encode(const Message& message) {
    return json::serialize(std::visit(Encoder{}, message));
}

Message decode(std::string_view datagram) {
    boost::system::error_code ec;
    json::value value = json::parse(datagram, ec);
    if (ec) throw ProtocolError("not JSON: " + ec.message());
    if (!value.is_object()) throw ProtocolError("not a JSON object");
    const json::object& object = value.get_object();
    const json::value& type_value = field(object, "type");
    if (!type_value.is_string()) throw ProtocolError("field \"type\" is not a string");
    std::string_view type = type_value.get_string();

    if (type == "listeners") return decode_listeners(object);
    if (type == "drain") {
        return Drain{number<std::int64_t>(object, "timeout_ms"), optional_bool(object, "hand_off")};
    }
    if (type == "hand_off" || type == "adopt") {
        std::string bytes = bytes_field(object);
        bool tls = optional_bool(object, "tls");
        // Its bytes would be TLS records of a session this process knows nothing of.
        if (tls && !bytes.empty()) throw ProtocolError("a TLS connection handed over with bytes");
        if (type == "hand_off") return HandOff{std::move(bytes), tls};
        return Adopt{std::move(bytes), optional_bool(object, "fresh"), tls};
    }
    if (type == "ready") {
        return Ready{optional_number<std::int64_t>(object, "pid"),
                     optional_number<std::uint64_t>(object, "requests_in_flight")};
    }
    if (type == "heartbeat") return decode_heartbeat(object);
    if (type == "draining") return Draining{};
    if (type == "shed") return Shed{number<std::uint64_t>(object, "connections")};
    if (type == "accepting") {
        const json::value& accepting = field(object, "accepting");
        if (!accepting.is_bool()) throw ProtocolError("field \"accepting\" is not a boolean");
        return Accepting{accepting.get_bool()};
    }
    if (type == "reopen_logs") return ReopenLogs{};
    if (type == "tls_credentials") {
        return TlsCredentials{string_field(object, "certificate_chain"),
                              string_field(object, "private_key"), string_field(object, "ciphers")};
    }
    if (type == "ticket_keys") return decode_ticket_keys(object);
    if (type == "heartbeat_interval") {
        auto interval = number<std::int64_t>(object, "interval_ms");
        if (interval < 10 || interval > 60'000) {
            throw ProtocolError("field \"interval_ms\" is not from 10 to 60000");
        }
        return HeartbeatInterval{interval};
    }
    throw ProtocolError("unknown message type \"" + std::string(type) + "\"");
}

}  // namespace prefork::control

#include "upgrade_state.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace prefork::master::upgrade {
namespace json = boost::json;
namespace {

constexpr std::size_t kMaxStateBytes = 64 << 20;  // a state is some KB per hundred workers

std::string system_error(const char* call) {
    return std::string(call) + ": " + std::strerror(errno);
}

const json::value& value_at(const json::object& object, const char* key) {
    const json::value* value = object.if_contains(key);
    if (value == nullptr) throw StateError(std::string("no field \"") + key + "\"");
    return *value;
}

const char* state_text(WorkerProcess::State state) {
    return state_name(state);
}

WorkerProcess::State state_from(const std::string& name) {
    for (auto state : {WorkerProcess::State::starting, WorkerProcess::State::ready,
                       WorkerProcess::State::draining, WorkerProcess::State::stopping}) {
        if (name == state_name(state)) return state;
    }
    throw StateError("a worker in an unknown state \"" + name + "\"");
}

}  // namespace

const json::object& object_at(const json::object& object, const char* key) {
    const json::value& value = value_at(object, key);
    if (!value.is_object()) throw StateError(std::string("field \"") + key + "\" not an object");
    return value.get_object();
}

const json::array& array_at(const json::object& object, const char* key) {
    const json::value& value = value_at(object, key);
    if (!value.is_array()) throw StateError(std::string("field \"") + key + "\" not an array");
    return value.get_array();
}

std::int64_t int_at(const json::object& object, const char* key) {
    const json::value& value = value_at(object, key);
    if (value.is_int64()) return value.get_int64();
    if (value.is_uint64() && value.get_uint64() <= INT64_MAX) {
        return static_cast<std::int64_t>(value.get_uint64());
    }
    throw StateError(std::string("field \"") + key + "\" not an integer");
}

std::uint64_t uint_at(const json::object& object, const char* key) {
    const json::value& value = value_at(object, key);
    if (value.is_uint64()) return value.get_uint64();
    if (value.is_int64() && value.get_int64() >= 0) {
        return static_cast<std::uint64_t>(value.get_int64());
    }
    throw StateError(std::string("field \"") + key + "\" not a count");
}

bool bool_at(const json::object& object, const char* key) {
    const json::value& value = value_at(object, key);
    if (!value.is_bool()) throw StateError(std::string("field \"") + key + "\" not a boolean");
    return value.get_bool();
}

std::string string_at(const json::object& object, const char* key) {
    const json::value& value = value_at(object, key);
    if (!value.is_string()) throw StateError(std::string("field \"") + key + "\" not a string");
    return std::string(value.get_string());
}

UniqueFd write_state(const json::object& state) {
    std::string text = json::serialize(state);
    UniqueFd fd(::memfd_create("prefork-upgrade-state", 0));  // inheritable: it crosses
    if (!fd) throw StateError(system_error("memfd_create"));
    for (std::size_t written = 0; written < text.size();) {
        ssize_t n = ::write(fd.get(), text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw StateError(system_error("write(upgrade state)"));
        written += static_cast<std::size_t>(n);
    }
    return fd;
}

std::optional<json::object> take_state_from_environment() {
    const char* named = std::getenv(kStateFdEnv);
    if (named == nullptr) return std::nullopt;
    std::string number = named;
    ::unsetenv(kStateFdEnv);
    char* end = nullptr;
    long fd_number = std::strtol(number.c_str(), &end, 10);
    if (number.empty() || *end != '\0' || fd_number < 3 || fd_number > INT32_MAX) {
        throw StateError(std::string(kStateFdEnv) + "=" + number + " is not a descriptor");
    }
    UniqueFd fd(static_cast<int>(fd_number));
    std::string text;
    char buffer[65536];
    for (off_t at = 0;;) {
        ssize_t n = ::pread(fd.get(), buffer, sizeof(buffer), at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw StateError(system_error("read(upgrade state)"));
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        at += n;
        if (text.size() > kMaxStateBytes) throw StateError("the upgrade state is too large");
    }
    boost::system::error_code ec;
    json::value parsed = json::parse(text, ec);
    if (ec || !parsed.is_object()) throw StateError("the upgrade state is not a JSON object");
    json::object& state = parsed.get_object();
    std::int64_t format = int_at(state, "format");
    if (format < 1 || format > kStateFormat) {
        throw StateError("the upgrade state is of format " + std::to_string(format) +
                         ", this prefork reads formats 1 to " + std::to_string(kStateFormat));
    }
    return std::move(state);
}

std::int64_t to_ticks(Clock::time_point time) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

Clock::time_point from_ticks(std::int64_t ticks) {
    return Clock::time_point(
        std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ticks)));
}

json::value to_json(const Settings& settings) {
    json::object values;
    for (const auto& [key, list] : settings.values) {
        json::array entries;
        for (const Setting& s : list) entries.push_back(json::array{s.value, s.name, s.location});
        values[key] = std::move(entries);
    }
    json::value command = nullptr;
    if (settings.command) {
        json::array words;
        for (const auto& word : *settings.command) words.emplace_back(word);
        command = std::move(words);
    }
    return json::object{{"values", std::move(values)}, {"command", std::move(command)}};
}

Settings settings_from_json(const json::value& value) {
    if (!value.is_object()) throw StateError("the settings are not an object");
    Settings settings;
    for (const auto& [key, list] : object_at(value.get_object(), "values")) {
        if (!list.is_array()) throw StateError("a setting is not a list");
        for (const json::value& entry : list.get_array()) {
            const json::array* parts = entry.if_array();
            if (parts == nullptr || parts->size() != 3 || !(*parts)[0].is_string() ||
                !(*parts)[1].is_string() || !(*parts)[2].is_string()) {
                throw StateError("a setting is not [value, name, location]");
            }
            settings.add(key, Setting{std::string((*parts)[0].get_string()),
                                      std::string((*parts)[1].get_string()),
                                      std::string((*parts)[2].get_string())});
        }
    }
    const json::value& command = value_at(value.get_object(), "command");
    if (command.is_array()) {
        std::vector<std::string> words;
        for (const json::value& word : command.get_array()) {
            if (!word.is_string()) throw StateError("a word of the command is not a string");
            words.emplace_back(word.get_string());
        }
        settings.command = std::move(words);
    }
    return settings;
}

// The control protocol's heartbeat already carries every counter.
json::value to_json(const control::WorkerCounters& counters) {
    control::Heartbeat heartbeat;
    static_cast<control::WorkerCounters&>(heartbeat) = counters;
    return json::parse(control::encode(heartbeat));
}

control::WorkerCounters counters_from_json(const json::value& value) {
    try {
        control::Message message = control::decode(json::serialize(value));
        if (auto* heartbeat = std::get_if<control::Heartbeat>(&message)) return *heartbeat;
    } catch (const control::ProtocolError& error) {
        throw StateError(std::string("counters: ") + error.what());
    }
    throw StateError("counters that are not a heartbeat's");
}

json::object to_json(const WorkerProcess& worker) {
    return {{"pid", worker.pid},
            {"generation", worker.generation},
            {"slot", worker.slot},
            {"state", state_text(worker.state)},
            {"started_at", to_ticks(worker.started_at)},
            {"last_heard", to_ticks(worker.last_heard)},
            {"counters", to_json(worker.counters)},
            {"max_requests", worker.max_requests},
            {"retiring", worker.retiring},
            {"had_traffic", worker.had_traffic},
            {"exit_cause", worker.exit_cause},
            {"accepting", worker.accepting},
            {"shed_asked_at", to_ticks(worker.shed_asked_at)},
            {"last_heartbeat_at", to_ticks(worker.last_heartbeat_at)},
            {"memory_warned", worker.memory_warned},
            {"requests_in_flight", worker.requests_in_flight},
            {"control_fd", worker.control->native_handle()}};
}

WorkerProcess worker_from_json(boost::asio::io_context& io, const json::object& object) {
    WorkerProcess worker;
    worker.pid = static_cast<pid_t>(int_at(object, "pid"));
    worker.generation = static_cast<int>(int_at(object, "generation"));
    worker.slot = static_cast<int>(int_at(object, "slot"));
    worker.state = state_from(string_at(object, "state"));
    worker.started_at = from_ticks(int_at(object, "started_at"));
    worker.last_heard = from_ticks(int_at(object, "last_heard"));
    static_cast<control::WorkerCounters&>(worker.counters) =
        counters_from_json(value_at(object, "counters"));
    worker.max_requests = uint_at(object, "max_requests");
    worker.retiring = bool_at(object, "retiring");
    worker.had_traffic = bool_at(object, "had_traffic");
    worker.exit_cause = string_at(object, "exit_cause");
    worker.accepting = bool_at(object, "accepting");
    worker.shed_asked_at = from_ticks(int_at(object, "shed_asked_at"));
    worker.last_heartbeat_at = from_ticks(int_at(object, "last_heartbeat_at"));
    worker.memory_warned = bool_at(object, "memory_warned");
    worker.requests_in_flight = uint_at(object, "requests_in_flight");
    if (worker.pid <= 0 || worker.slot < 0) throw StateError("a worker without a pid or slot");
    worker.control = std::make_unique<ControlChannel>(
        io, take_descriptor(value_at(object, "control_fd"), "a worker's control socket"));
    return worker;
}

UniqueFd take_descriptor(const json::value& number, const char* what) {
    std::int64_t fd = number.is_int64() ? number.get_int64() : -1;
    if (fd < 0 || fd > INT32_MAX || ::fcntl(static_cast<int>(fd), F_GETFD) < 0) {
        throw StateError(std::string(what) + " (descriptor " + json::serialize(number) +
                         ") did not cross the exec");
    }
    return UniqueFd(static_cast<int>(fd));
}

bool set_inheritable(const std::vector<int>& fds, bool inheritable) {
    for (int fd : fds) {
        if (::fcntl(fd, F_SETFD, inheritable ? 0 : FD_CLOEXEC) != 0) return false;
    }
    return true;
}

}  // namespace prefork::master::upgrade

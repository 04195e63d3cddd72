#pragma once

#include "settings.hpp"
#include "worker_process.hpp"

#include <prefork/common/control_protocol.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

// What a master hands to the image that replaces it in place (USR2, docs/protocol.md):
// one JSON object in a memfd that the execve keeps open, its descriptor named by
// PREFORK_UPGRADE_STATE in the new image's environment. Descriptors that cross the exec
// (listeners, the admin endpoint, the workers' control sockets) are named in it by number.
namespace prefork::master::upgrade {

// The state's format; a master reads the formats up to its own.
inline constexpr int kStateFormat = 1;
inline constexpr const char* kStateFdEnv = "PREFORK_UPGRADE_STATE";

// The state cannot be written, read or understood; what() says why.
class StateError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// A memfd holding `state`, inheritable (it must cross the exec). Throws StateError.
UniqueFd write_state(const boost::json::object& state);

// The state the master before this image left, when this image is an upgrade's: read
// from the descriptor PREFORK_UPGRADE_STATE names (closed after, and the variable removed
// so that no worker sees it). Throws StateError when the variable is there but its state
// cannot be read or is of a format this master does not know.
std::optional<boost::json::object> take_state_from_environment();

// steady_clock is CLOCK_MONOTONIC, the same across an exec: its time points cross as numbers.
std::int64_t to_ticks(Clock::time_point time);
Clock::time_point from_ticks(std::int64_t ticks);

boost::json::value to_json(const Settings& settings);
Settings settings_from_json(const boost::json::value& value);

boost::json::value to_json(const control::WorkerCounters& counters);
control::WorkerCounters counters_from_json(const boost::json::value& value);

// A worker as it crosses the exec: its control socket by number. The restored one's
// channel is on `io` and not started yet.
boost::json::object to_json(const WorkerProcess& worker);
WorkerProcess worker_from_json(boost::asio::io_context& io, const boost::json::object& object);

// The descriptor must be open (it crossed the exec): a descriptor of ours, or StateError.
UniqueFd take_descriptor(const boost::json::value& number, const char* what);

// Reads of the state that throw StateError, naming the field, when it is missing or of
// another type.
const boost::json::object& object_at(const boost::json::object& object, const char* key);
const boost::json::array& array_at(const boost::json::object& object, const char* key);
std::int64_t int_at(const boost::json::object& object, const char* key);
std::uint64_t uint_at(const boost::json::object& object, const char* key);
bool bool_at(const boost::json::object& object, const char* key);
std::string string_at(const boost::json::object& object, const char* key);

// Clears close-on-exec on each descriptor for the exec, or sets it again (the exec
// failed; and in the new image, at once). Returns false, with errno, at the first failure.
bool set_inheritable(const std::vector<int>& fds, bool inheritable);

}  // namespace prefork::master::upgrade

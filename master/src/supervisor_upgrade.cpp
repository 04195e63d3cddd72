// The supervisor's upgrade in place (USR2, POST /upgrade): the new binary is checked, then
// exec'ed with the same pid; the new image takes over the listeners, the admin endpoint,
// the workers and every counter (docs/protocol.md), then replaces the workers as a reload
// does, or keeps them.

#include "supervisor.hpp"
#include "upgrade_state.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

extern char** environ;

namespace prefork::master {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

// How long the new binary's --check may take.
constexpr std::chrono::milliseconds kCheckLimit = 5s;
// How long messages already on their way to workers, and hang reports, may take to end
// before the exec, which would lose them.
constexpr std::chrono::milliseconds kSendLimit = 4s;
// How long the exec waits for the admin endpoint's clients to be answered.
constexpr std::chrono::milliseconds kAdminLimit = 500ms;

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

Supervisor::Supervisor(MasterIdentity identity, Settings command_line, Settings settings,
                       Options options, ListenerSet listeners, UniqueFd admin,
                       SystemdNotifier notifier, const json::object& state)
    : Supervisor(std::move(identity), std::move(command_line), std::move(settings),
                 std::move(options), std::move(listeners), std::move(admin), std::move(notifier)) {
    restore_state(state);
}

bool Supervisor::upgrade(bool keep_workers, std::string& error) {
    if (phase_ != Phase::running) {
        error = "prefork is stopping";
        return false;
    }
    // After the 202 is on its way: the exec closes the admin endpoint's connections.
    boost::asio::post(io_, [this, keep_workers] {
        request_upgrade(keep_workers, "the admin endpoint's upgrade");
    });
    return true;
}

void Supervisor::request_upgrade(bool keep_workers, const std::string& source) {
    if (phase_ != Phase::running) {
        log::info("received ", source, " while stopping: no upgrade");
        return;
    }
    // A reload whose new workers keep dying never completes: an upgrade does not wait for it.
    if (upgrade_ != Upgrade::none || (reloading_ && crash_loop_.failures_in_a_row() == 0)) {
        log::info("received ", source, " during ",
                  upgrade_ != Upgrade::none ? "an upgrade" : "a reload", ": an upgrade follows it");
        upgrade_queued_ = true;
        queued_upgrade_keeps_workers_ = keep_workers;
        return;
    }
    log::info("received ", source, ": upgrading");
    start_upgrade(keep_workers);
}

void Supervisor::start_upgrade(bool keep_workers) {
    upgrade_ = Upgrade::checking;
    upgrade_keeps_workers_ = keep_workers;
    upgrade_started_at_ = Clock::now();
    if (announced_ready_) notifier_.reloading();  // else systemd still waits for the first
    std::vector<std::string> args = {"--check"};
    if (!identity_.argv.empty()) {
        args.insert(args.end(), identity_.argv.begin() + 1, identity_.argv.end());
    }
    log::info("upgrade: checking ", identity_.binary_path, " --check",
              keep_workers ? " (the workers stay)" : "");
    check_ = std::make_unique<BinaryCheck>(
        io_, identity_.binary_path, std::move(args), upgrade::kStateFormat, kCheckLimit,
        [this](BinaryCheck::Result result) { on_upgrade_checked(std::move(result)); });
}

void Supervisor::on_upgrade_checked(BinaryCheck::Result result) {
    check_.reset();
    if (upgrade_ != Upgrade::checking) return;
    if (phase_ != Phase::running) {
        upgrade_ = Upgrade::none;
        return;
    }
    if (!result.passed) return upgrade_failed(result.reason);
    checked_device_ = result.device;
    checked_inode_ = result.inode;
    log::info("upgrade: ", result.version, " (", identity_.binary_path,
              ") accepts the configuration: re-executing the master in place");
    upgrade_ = Upgrade::sending;
    // Its clients are answered by this image or, queued, by the next.
    if (admin_) admin_->pause();
    exec_when_sent(Clock::now() + kSendLimit);
}

// What is on its way to a worker (connections being handed over, a drain) would be lost
// with the old image, and a hang report in progress would be cut short: the exec waits for
// both, for a moment at most, and the upgrade is refused when they do not end (a worker
// that does not read its control socket).
void Supervisor::exec_when_sent(Clock::time_point give_up_at) {
    if (upgrade_ != Upgrade::sending) return;
    if (phase_ != Phase::running) return abandon_upgrade();
    std::size_t waiting = 0, reports = 0;
    for (const auto& [pid, worker] : workers_) {
        waiting += worker.control->waiting();
        if (worker.hang_report) ++reports;
    }
    // Admin clients being answered get their answers first, for a moment (a slow one is
    // then cut off: an admin request may take seconds to arrive).
    bool answering = admin_ && admin_->connection_count() > 0 &&
                     Clock::now() < give_up_at - kSendLimit + kAdminLimit;
    if (waiting + reports == 0 && !answering) return exec_new_image();
    if (Clock::now() >= give_up_at) {
        return upgrade_failed(std::to_string(waiting) + " message(s) to workers still unsent and " +
                              std::to_string(reports) + " hang report(s) still running after " +
                              std::to_string(kSendLimit.count()) + " ms");
    }
    upgrade_timer_.expires_after(10ms);
    upgrade_timer_.async_wait([this, give_up_at](boost::system::error_code ec) {
        if (!ec) exec_when_sent(give_up_at);
    });
}

void Supervisor::exec_new_image() {
    // What this image was told meanwhile is done here, not left to the new image (a HUP
    // then would replace the new generation at once).
    signals_.read_pending();
    if (upgrade_ != Upgrade::sending) return;  // a stop abandoned it
    if (phase_ != Phase::running) return abandon_upgrade();
    for (const auto& [pid, worker] : workers_) {  // what those signals sent (a drain)
        if (worker.control->waiting() > 0) return exec_when_sent(Clock::now() + kSendLimit);
    }
    struct stat now {};
    if (::stat(identity_.binary_path.c_str(), &now) != 0 || now.st_dev != checked_device_ ||
        now.st_ino != checked_inode_) {
        return upgrade_failed(identity_.binary_path +
                              " was replaced again after its check; upgrade again to run it");
    }
    std::vector<int> carried = listeners_.all_fds();
    if (admin_ && admin_->listener_fd() >= 0) carried.push_back(admin_->listener_fd());
    for (auto& [pid, worker] : workers_) {
        if (worker.control->is_open()) carried.push_back(worker.control->native_handle());
    }
    UniqueFd state;
    try {
        state = upgrade::write_state(save_state());
    } catch (const upgrade::StateError& error) {
        return upgrade_failed(std::string("cannot hand the state over: ") + error.what());
    }
    std::vector<std::string> argv = identity_.argv;
    if (argv.empty()) argv.push_back(identity_.binary_path);
    std::vector<char*> args;
    for (std::string& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    log::info("upgrade: execve ", identity_.binary_path, " (pid ", ::getpid(), ", ",
              workers_.size(), " worker", workers_.size() == 1 ? "" : "s", ", ", carried.size(),
              " descriptors kept)");
    log_output_.write_pending(500ms);

    // The signals prefork handles are blocked for good (SignalReader): one that comes now
    // stays pending across the exec, for the new image to read.
    int error = 0;
    if (upgrade::set_inheritable(carried, true)) {
        ::setenv(upgrade::kStateFdEnv, std::to_string(state.get()).c_str(), 1);
        ::execve(identity_.binary_path.c_str(), args.data(), environ);
        error = errno;  // still this image
        ::unsetenv(upgrade::kStateFdEnv);
    } else {
        error = errno;
    }
    upgrade::set_inheritable(carried, false);
    upgrade_failed("execve(" + identity_.binary_path + "): " + std::strerror(error));
}

void Supervisor::upgrade_failed(const std::string& reason) {
    upgrade_ = Upgrade::none;
    if (admin_) admin_->resume();
    ++upgrade_failures_;
    log::error("upgrade failed, the running master stays: ", reason);
    record_.event("upgrade failed: " + reason);
    if (announced_ready_) {
        notifier_.ready("upgrade failed: " + reason);
    } else {
        notifier_.notify("STATUS=upgrade failed: " + reason);
    }
    run_what_waited();
}

void Supervisor::upgrade_done() {
    upgrade_ = Upgrade::none;
    log::info("upgrade from prefork ", upgraded_from_, " to prefork ", identity_.version,
              " complete, ", seconds(Clock::now() - upgrade_started_at_), "s after it began");
}

void Supervisor::abandon_upgrade() {
    check_.reset();  // kills a check still running
    upgrade_timer_.cancel();
    if (upgrade_ == Upgrade::sending && admin_) admin_->resume();
    upgrade_ = Upgrade::none;
    upgrade_queued_ = false;
}

// Connections that the control sockets' queues dropped (their worker went first): counted
// when the worker is reaped, so carried with the counters.
std::uint64_t Supervisor::dropped_on_control_sockets() const {
    std::uint64_t dropped = 0;
    for (const auto& [pid, worker] : workers_) dropped += worker.control->dropped();
    return dropped;
}

json::object Supervisor::save_state() const {
    json::array workers;
    for (const auto& [pid, worker] : workers_) {
        json::object saved = upgrade::to_json(worker);
        if (!worker.control->is_open()) saved["control_fd"] = -1;
        workers.push_back(std::move(saved));
    }
    return {{"format", upgrade::kStateFormat},
            {"version", identity_.version},
            {"binary_path", identity_.binary_path},
            {"keep_workers", upgrade_keeps_workers_},
            {"upgrade_started_at", upgrade::to_ticks(upgrade_started_at_)},
            {"notify_socket", notifier_.socket_path()},
            {"settings", upgrade::to_json(settings_)},
            {"reuseport", listeners_.reuseport()},
            {"adopted", listeners_.adopted()},
            {"listeners", listeners_.save()},
            {"admin_fd", admin_ ? admin_->listener_fd() : -1},
            {"workers", std::move(workers)},
            {"target_workers", target_workers_},
            {"generation", generation_},
            {"started_at", upgrade::to_ticks(started_at_)},
            {"handoff_fallbacks", handoff_fallbacks_ + dropped_on_control_sockets()},
            {"connections_rescued", strays_.rescued()},
            {"any_ready", crash_loop_.any_ready()},
            {"launch_failures", launch_failures_},
            {"reload_queued", reload_queued_},
            {"upgrade_queued", upgrade_queued_},
            {"queued_upgrade_keeps_workers", queued_upgrade_keeps_workers_},
            {"upgrades", upgrades_},
            {"upgrade_failures", upgrade_failures_},
            {"log_lines_dropped", log_lines_dropped_before_ + log::dropped_line_count()},
            {"record", record_.save()},
            {"ticket_keys", ticket_keys_json()}};
}

// The session-ticket keys, so that tickets issued before the exec still resume after it (in
// the memfd, which only the new image reads).
json::array Supervisor::ticket_keys_json() const {
    static constexpr char kHex[] = "0123456789abcdef";
    json::array keys;
    for (const std::string& key : ticket_keys_.keys()) {
        std::string hex;
        for (unsigned char byte : key) {
            hex += kHex[byte >> 4];
            hex += kHex[byte & 15];
        }
        keys.emplace_back(hex);
    }
    return keys;
}

void Supervisor::restore_ticket_keys(const json::object& state) {
    const json::value* saved = state.if_contains("ticket_keys");  // none from older images
    if (saved == nullptr || !saved->is_array()) return;
    std::vector<std::string> keys;
    for (const json::value& entry : saved->get_array()) {
        if (!entry.is_string() || entry.get_string().size() % 2 != 0) {
            throw upgrade::StateError("a ticket key is not hexadecimal");
        }
        std::string_view hex = entry.get_string();
        auto digit = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            throw upgrade::StateError("a ticket key is not hexadecimal");
        };
        std::string key;
        for (std::size_t i = 0; i < hex.size(); i += 2) {
            key += static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1]));
        }
        keys.push_back(std::move(key));
    }
    ticket_keys_.restore(std::move(keys));
    if (!ticket_keys_.empty()) schedule_ticket_rotation();
}

void Supervisor::restore_state(const json::object& state) {
    using namespace upgrade;
    identity_.binary_path = string_at(state, "binary_path");
    upgraded_from_ = string_at(state, "version");
    upgrade_keeps_workers_ = bool_at(state, "keep_workers");
    upgrade_started_at_ = from_ticks(int_at(state, "upgrade_started_at"));
    target_workers_ = static_cast<int>(int_at(state, "target_workers"));
    generation_ = static_cast<int>(int_at(state, "generation"));
    started_at_ = from_ticks(int_at(state, "started_at"));
    handoff_fallbacks_ = uint_at(state, "handoff_fallbacks");
    strays_.continue_count(uint_at(state, "connections_rescued"));
    if (bool_at(state, "any_ready")) crash_loop_.note_ready();
    launch_failures_ = static_cast<int>(int_at(state, "launch_failures"));
    reload_queued_ = bool_at(state, "reload_queued");
    upgrade_queued_ = bool_at(state, "upgrade_queued");
    queued_upgrade_keeps_workers_ = bool_at(state, "queued_upgrade_keeps_workers");
    upgrades_ = uint_at(state, "upgrades") + 1;
    upgrade_failures_ = uint_at(state, "upgrade_failures");
    log_lines_dropped_before_ = uint_at(state, "log_lines_dropped");
    record_.restore(object_at(state, "record"));
    restore_ticket_keys(state);
    for (const json::value& saved : array_at(state, "workers")) {
        if (!saved.is_object()) throw StateError("a worker is not an object");
        json::object entry = saved.get_object();
        if (int_at(entry, "control_fd") < 0) {
            // Its socket had closed (it is exiting): a closed one in its place.
            ControlSocketPair closed = make_control_socket_pair();
            entry["control_fd"] = closed.master_end.release();
        }
        bool closed = int_at(entry, "control_fd") < 0;
        WorkerProcess worker = worker_from_json(io_, entry);
        if (closed) worker.control->close();
        pid_t pid = worker.pid;
        auto [placed, fresh] = workers_.emplace(pid, std::move(worker));
        if (!fresh) throw StateError("worker " + std::to_string(pid) + " twice");
        listen_to(placed->second);
    }
    // A reload still under way (an upgrade does not wait for one whose workers keep dying).
    reloading_ = std::any_of(workers_.begin(), workers_.end(), [&](const auto& entry) {
        return entry.second.generation < generation_;
    });
    last_upgrade_ = log::timestamp();
    upgrade_ = Upgrade::restored;
}

// In the new image, once its loop is about to run.
void Supervisor::finish_restoring() {
    reap_workers();  // those that exited during the exec
    std::size_t workers = workers_.size();
    log::info("upgraded in place from prefork ", upgraded_from_, " to prefork ", identity_.version,
              " (pid ", ::getpid(), "): took over ", workers, " worker", workers == 1 ? "" : "s",
              " and the listeners");
    record_.event("upgraded from prefork " + upgraded_from_ + " to prefork " + identity_.version);
    steer_connections();
    if (upgrade_keeps_workers_) {
        upgrade_done();
        announced_ready_ = false;
        announce_ready_if_all_are();
        return run_what_waited();
    }
    // A HUP that came during the check is this reload: it reads the configuration anew.
    reload_queued_ = false;
    reload_configuration(true);
}

}  // namespace prefork::master

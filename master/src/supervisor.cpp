#include "supervisor.hpp"

#include "exit_status.hpp"
#include "options_diff.hpp"

#include <prefork/common/descriptor_limit.hpp>
#include <prefork/common/log.hpp>
#include <prefork/common/log_output.hpp>

#include <boost/asio/post.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace prefork::master {
namespace {

using namespace std::chrono_literals;

// Descriptors that starting a worker needs for a moment (the control socket pair,
// /dev/null, Boost.Process's pipe to report a failed exec) or keeps (its control socket).
constexpr std::size_t kDescriptorsToStartAWorker = 8;
// How long a worker killed with SIGABRT for hanging may take to dump core.
constexpr auto kAbortGrace = 2s;
// A worker whose heartbeat (every second) is this late takes no new connections meanwhile:
// they go to the other slots, and what waits in its queue to the other workers.
constexpr std::chrono::milliseconds kLateHeartbeat = 2500ms;
// How long reading a hung worker's stack and requests may hold up its SIGABRT.
constexpr std::chrono::milliseconds kHangReportLimit = 3s;

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

std::string uptime(const WorkerProcess& worker) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1fs", seconds(Clock::now() - worker.started_at));
    return text;
}

std::chrono::milliseconds as_millis(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

}  // namespace

Supervisor::Supervisor(MasterIdentity identity, Settings command_line, Settings settings,
                       Options options, ListenerSet listeners, UniqueFd admin,
                       SystemdNotifier notifier)
    : log_output_(io_, log::LogOutput::buffer_limit_from_environment()),
      signals_(io_, handled_signals()),
      tick_timer_(io_),
      memory_timer_(io_),
      quiet_timer_(io_),
      respawn_timer_(io_),
      stop_timer_(io_),
      identity_(std::move(identity)),
      command_line_(std::move(command_line)),
      settings_(std::move(settings)),
      options_(std::move(options)),
      listeners_(std::move(listeners)),
      strays_(
          io_, [this] { return serving() && pick_adopter(0) != nullptr; },
          [this](UniqueFd connection, int listener) {
              take_stray_connection(std::move(connection), listeners_.serves_tls(listener));
          }),
      target_workers_(options_.workers),
      random_(static_cast<unsigned>(::getpid())),
      descriptor_limit_(open_file_limit()),
      notifier_(std::move(notifier)),
      upgrade_timer_(io_),
      ticket_timer_(io_) {
    if (admin) {
        std::string name = options_.admin ? options_.admin->to_string() : "admin";
        log::info("admin endpoint on ", local_address(admin.get()), " (", name, ")");
        admin_ = std::make_unique<AdminServer>(io_, std::move(admin), name, *this);
    }
}

int Supervisor::run() {
    if (upgrade_ != Upgrade::restored) {
        log::info("starting ", target_workers_, " worker", target_workers_ == 1 ? "" : "s", " (",
                  options_.workers_source, "): ", options_.command.front());
    }
    // Every signal prefork documents is read, so each works when prefork is PID 1 (where the
    // kernel drops signals that have no handler and are not blocked).
    signals_.start([this](int signal) { handle_signal(signal); });
    if (upgrade_ == Upgrade::restored) finish_restoring();
    manage_workers();
    tick();
    check_memory();
    io_.run();
    close_listeners();
    if (exit_status_ == 0) {
        log::info("stopped (", stop_reason_, ")");
    } else {
        log::error("stopped with exit status ", exit_status_, ": ", stop_reason_);
    }
    return exit_status_;
}

// --- signals ---------------------------------------------------------------------------

const std::vector<int>& Supervisor::handled_signals() {
    static const std::vector<int> signals = {SIGTERM, SIGINT,  SIGQUIT, SIGHUP, SIGTTIN,
                                             SIGTTOU, SIGUSR1, SIGUSR2, SIGCHLD};
    return signals;
}

void Supervisor::handle_signal(int signal) {
    switch (signal) {
        case SIGCHLD:
            return reap_workers();
        case SIGTERM:
            return handle_term("TERM");
        case SIGINT:
            return handle_term("INT");
        case SIGQUIT:
            return handle_quit();
        case SIGTTIN:
            return handle_ttin();
        case SIGTTOU:
            return handle_ttou();
        case SIGHUP:
            return handle_hup();
        case SIGUSR1:
            return handle_usr1();
        case SIGUSR2:
            return request_upgrade(false, "USR2");
    }
}

void Supervisor::handle_term(const char* name) {
    if (phase_ == Phase::stopping_now) return;  // already stopping at once, maybe with an error
    if (phase_ == Phase::running) {
        stop_reason_ = std::string(name) + ", graceful";
        notifier_.stopping();
        if (options_.shutdown_delay.count() > 0) return delay_shutdown(name);
        log::info("received ", name, ": stopping gracefully");
        return stop_gracefully();
    }
    log::info("received ", name, " again: stopping now");
    stop_now(0, std::string(name) + " twice, immediate");
}

// Load balancers see /readyz fail and stop sending traffic; then the listeners close: after
// the delay, or (auto) once no new connection and no new request has come for the quiet
// period, at most after the delay.
void Supervisor::delay_shutdown(const char* name) {
    phase_ = Phase::delaying_shutdown;
    delay_ends_at_ = Clock::now() + options_.shutdown_delay;
    if (options_.shutdown_delay_auto) {
        log::info("received ", name, ": not ready any more, serving until no new connection or ",
                  "request has come for ", seconds(options_.shutdown_quiet_period), "s (at most ",
                  seconds(options_.shutdown_delay), "s)");
        last_traffic_at_ = Clock::now();
        for (auto& [pid, worker] : workers_) watch_traffic_closely(worker);
        wait_for_quiet();
    } else {
        log::info("received ", name, ": not ready any more, serving ",
                  seconds(options_.shutdown_delay), "s more before stopping");
    }
    stop_timer_.expires_after(options_.shutdown_delay);
    stop_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || phase_ != Phase::delaying_shutdown) return;
        if (options_.shutdown_delay_auto) {
            log::info("shutdown delay: traffic still came after ", seconds(options_.shutdown_delay),
                      "s: stopping gracefully");
        }
        stop_gracefully();
    });
}

// Heartbeats every 100 ms, so that the end of traffic is seen within a tenth of a second.
void Supervisor::watch_traffic_closely(WorkerProcess& worker) {
    if (worker.state != WorkerProcess::State::ready || worker.reaped ||
        !worker.control->is_open()) {
        return;  // a starting one is told once ready
    }
    worker.control->send_in_order(control::HeartbeatInterval{100}, {});
}

// Quiet: no new connection or request reported for the quiet period, by workers that all
// did report lately (a worker whose loop is stuck, or that heartbeats only every second,
// says nothing about its traffic: the delay then runs to its maximum).
bool Supervisor::traffic_has_stopped() const {
    auto now = Clock::now();
    if (now - last_traffic_at_ < options_.shutdown_quiet_period) return false;
    int ready = 0;
    for (const auto& [pid, worker] : workers_) {
        if (worker.state != WorkerProcess::State::ready || worker.reaped) continue;
        ++ready;
        if (now - worker.last_heard > 300ms) return false;
    }
    return ready > 0;
}

void Supervisor::wait_for_quiet() {
    quiet_timer_.expires_after(50ms);
    quiet_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || phase_ != Phase::delaying_shutdown) return;
        if (!traffic_has_stopped()) return wait_for_quiet();
        log::info("shutdown delay: no new connection or request for ",
                  seconds(options_.shutdown_quiet_period), "s: stopping gracefully");
        stop_gracefully();
    });
}

void Supervisor::handle_quit() {
    if (phase_ == Phase::stopping_now) return;
    log::info("received QUIT: stopping now");
    stop_now(0, "QUIT, immediate");
}

void Supervisor::handle_ttin() {
    if (phase_ != Phase::running) return;
    ++target_workers_;
    log::info("received TTIN: now ", target_workers_, " workers");
    manage_workers();
}

void Supervisor::handle_ttou() {
    if (phase_ != Phase::running) return;
    if (target_workers_ <= 1) {
        log::info("received TTOU: already at 1 worker, the least there can be");
        return;
    }
    --target_workers_;
    log::info("received TTOU: now ", target_workers_, " workers");
    drain_youngest_workers(target_workers_);
}

// The master writes to stderr only; the workers own the access log file.
void Supervisor::handle_usr1() {
    log::info("received USR1: the workers reopen the access log");
    for (auto& [pid, worker] : workers_) worker.control->send_in_order(control::ReopenLogs{}, {});
}

void Supervisor::handle_hup() {
    if (phase_ != Phase::running) return;
    if (upgrade_ == Upgrade::checking || upgrade_ == Upgrade::sending) {
        log::info("received HUP during an upgrade: a reload follows it");
        reload_queued_ = true;
        return;
    }
    if (reloading_ && crash_loop_.failures_in_a_row() == 0) {
        log::info("received HUP during a reload: one more reload follows it");
        reload_queued_ = true;
        return;
    }
    // A reload whose new workers keep dying never completes: a new one replaces it.
    log::info("received HUP: reloading");
    reload_configuration();
}

// --- the verbs ---------------------------------------------------------------------------

void Supervisor::tick() {
    reap_workers();  // a SIGCHLD merged with another is never lost
    murder_workers();
    manage_workers();
    even_out_connections();
    tick_timer_.expires_after(1s);
    tick_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) tick();
    });
}

// Four times a second, read by the master from /proc (a worker busy in a leaking loop could
// not be trusted to measure itself, or to answer): a worker above --worker-memory-limit is
// replaced as a recycled one is, its replacement ready first; one above twice the limit is
// killed at once, so that a runaway leak cannot take the machine.
void Supervisor::check_memory() {
    std::uint64_t limit = options_.worker_memory_limit;
    bool replace = false;
    auto mib = [](std::uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; };
    for (auto& [pid, worker] : workers_) {
        bool serving = worker.state == WorkerProcess::State::ready ||
                       worker.state == WorkerProcess::State::draining;
        if (limit == 0 || worker.reaped || !serving) continue;
        std::uint64_t resident = resident_bytes(pid);
        if (resident <= limit) continue;
        if (!worker.had_traffic) {
            // Replacing it would not help: its replacement would start as large.
            if (!worker.memory_warned) {
                log::warning("worker ", pid, " uses ", mib(resident),
                             " before serving anything, above --worker-memory-limit ", mib(limit),
                             ": the limit is below what a worker needs; not replacing it");
                worker.memory_warned = true;
            }
            continue;
        }
        if (resident > 2 * limit) {
            log::error("worker ", pid, " (generation ", worker.generation, ") uses ", mib(resident),
                       ", more than twice --worker-memory-limit ", mib(limit), ": killing it");
            ::kill(pid, SIGKILL);
            record_.event("worker " + std::to_string(pid) + " killed: " + mib(resident) +
                          " resident, more than twice the memory limit");
            worker.exit_cause = "memory";
            set_state(worker, WorkerProcess::State::stopping);
            worker.last_heard = Clock::now();
        } else if (worker.state == WorkerProcess::State::ready && !worker.retiring &&
                   phase_ == Phase::running) {
            log::warning("worker ", pid, " (generation ", worker.generation, ") uses ",
                         mib(resident), ", above --worker-memory-limit ", mib(limit),
                         ": replacing it");
            record_.event("worker " + std::to_string(pid) + " replaced: " + mib(resident) +
                          " resident, above the memory limit");
            worker.retiring = true;
            worker.exit_cause = "memory";
            replace = true;
        }
    }
    if (replace) manage_workers();
    memory_timer_.expires_after(250ms);
    memory_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) check_memory();
    });
}

int Supervisor::active_workers() const {
    return static_cast<int>(std::count_if(workers_.begin(), workers_.end(), [](const auto& entry) {
        return entry.second.is_active();
    }));
}

// Every start that fails sets the crash-loop guard's next start later, so this loop always
// ends: with enough workers, with a timer for the next start, or with prefork stopping.
void Supervisor::manage_workers() {
    while (serving() && active_workers() < target_workers_) {
        if (!crash_loop_.may_start(Clock::now())) {
            // During --shutdown-delay, a worker that could only start after it is no use.
            if (phase_ == Phase::delaying_shutdown &&
                crash_loop_.next_start_at() >= delay_ends_at_) {
                return;
            }
            respawn_timer_.expires_at(crash_loop_.next_start_at());
            respawn_timer_.async_wait([this](boost::system::error_code ec) {
                if (!ec) manage_workers();
            });
            return;
        }
        start_worker();
    }
}

void Supervisor::start_worker() {
    make_descriptors_for_a_start();
    WorkerProcess worker;
    try {
        worker = launch_worker(io_, {options_.command, options_.worker_env, generation_,
                                     options_.log_format == log::Format::json ? "json" : "text",
                                     log::level_name(options_.log_level), options_.access_log});
    } catch (const std::exception& error) {
        return note_launch_failure(error.what());
    }
    if (launch_failures_ > 0) {
        log::info("the worker command starts again, after ", launch_failures_, " failed attempt",
                  launch_failures_ == 1 ? "" : "s");
        launch_failures_ = 0;
    }
    pid_t pid = worker.pid;
    worker.max_requests = pick_max_requests();
    worker.slot = free_slot();
    listen_to(worker);
    bool sent = !options_.tls || send_tls(worker);
    sent = sent &&
           worker.control->send(control::Listeners{listeners_.names(), generation_,
                                                   as_millis(options_.graceful_timeout).count(),
                                                   worker.max_requests},
                                listeners_.fds_for_slot(worker.slot));
    if (!sent) {
        // Still "starting": its death goes through note_failed_start (backoff, giving up).
        log::error("worker ", pid, ": cannot send it its listening sockets; killing it");
        ::kill(pid, SIGKILL);
    }
    log::info("worker ", pid, " started (generation ", generation_, ")");
    record_.worker_started();
    workers_.emplace(pid, std::move(worker));
}

// Before its listeners: the certificate, the key and the ticket keys of the TLS listeners.
// Into a new worker's empty control socket, so each goes at once (false: it did not).
bool Supervisor::send_tls(WorkerProcess& worker) {
    if (ticket_keys_.empty()) {
        ticket_keys_.rotate();
        schedule_ticket_rotation();
    }
    return worker.control->send(options_.tls->pem) &&
           worker.control->send(ticket_keys_.message(
               std::chrono::duration_cast<std::chrono::seconds>(options_.tls_ticket_rotation)));
}

// A new key for new tickets, on every worker; the one before still decrypts, for one period.
void Supervisor::rotate_ticket_keys() {
    ticket_keys_.rotate();
    auto message = ticket_keys_.message(
        std::chrono::duration_cast<std::chrono::seconds>(options_.tls_ticket_rotation));
    for (auto& [pid, worker] : workers_) {
        // In order, after what waits (connections to adopt): never dropped for a full socket.
        if (worker.control) worker.control->send_in_order(message, {});
    }
    log::debug("TLS session-ticket key rotated");
    schedule_ticket_rotation();
}

void Supervisor::schedule_ticket_rotation() {
    ticket_timer_.expires_after(options_.tls_ticket_rotation);
    ticket_timer_.async_wait([this](boost::system::error_code ec) {
        if (!ec) rotate_ticket_keys();
    });
}

void Supervisor::listen_to(WorkerProcess& worker) {
    pid_t pid = worker.pid;
    worker.control->start(
        [this, pid](control::Message message, std::vector<UniqueFd> fds) {
            on_worker_message(pid, std::move(message), std::move(fds));
        },
        [pid] { log::debug("worker ", pid, ": control socket closed"); });
}

// The lowest slot no active worker holds: that of a worker being replaced (retiring,
// draining, dead), or a new one when there are more workers to keep up.
int Supervisor::free_slot() const {
    std::vector<bool> taken;
    for (const auto& [pid, worker] : workers_) {
        if (!worker.is_active()) continue;
        if (taken.size() <= static_cast<std::size_t>(worker.slot)) taken.resize(worker.slot + 1);
        taken[worker.slot] = true;
    }
    int slot = 0;
    while (static_cast<std::size_t>(slot) < taken.size() && taken[slot]) ++slot;
    return slot;
}

// The admin endpoint leaves descriptors to spare for this; when it could not (a low limit,
// many workers started at once), its clients give way: supervising comes first.
void Supervisor::make_descriptors_for_a_start() {
    auto open = open_descriptor_count();
    if (!open || *open + kDescriptorsToStartAWorker <= descriptor_limit_) return;
    std::size_t short_by = *open + kDescriptorsToStartAWorker - descriptor_limit_;
    std::size_t closed = admin_ ? admin_->shed(short_by) : 0;
    log::warning(*open, " of ", descriptor_limit_, " descriptors open: closed ", closed,
                 " admin connection", closed == 1 ? "" : "s", " to start a worker");
}

// Reaps every child that has ended: workers, and the orphans that the kernel hands to a
// child subreaper (processes that handlers started and whose worker is gone).
void Supervisor::reap_workers() {
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            on_worker_exit(pid, status);
            continue;
        }
        if (pid < 0 && errno == EINTR) continue;
        return;  // 0: none left to reap now; ECHILD: no children at all
    }
}

// A worker's heartbeat comes from its event loop, so silence means the loop is stuck.
void Supervisor::murder_workers() {
    auto now = Clock::now();
    for (auto& [pid, worker] : workers_) {
        if (worker.state == WorkerProcess::State::stopping) {
            if (now - worker.last_heard > kAbortGrace) ::kill(pid, SIGKILL);
            continue;
        }
        if (worker.state == WorkerProcess::State::starting &&
            now - worker.started_at > options_.timeout) {
            log::error("worker ", pid, " (generation ", worker.generation, ") not ready after ",
                       static_cast<int>(seconds(now - worker.started_at)), "s: killing it");
            ::kill(pid, SIGKILL);
            set_state(worker, WorkerProcess::State::stopping);
            worker.last_heard = now;
            continue;
        }
        auto silent = now - worker.last_heard;
        if (silent <= options_.timeout || worker.hang_report) continue;
        // Where it hangs goes to the log first: most containers keep no core file.
        worker.hang_report =
            std::make_unique<HangReport>(io_, pid, worker.requests_in_flight, kHangReportLimit,
                                         [this, pid, silent](std::vector<std::string> report) {
                                             kill_hung_worker(pid, silent, std::move(report));
                                         });
    }
    steer_connections();  // away from a worker whose heartbeats are late
}

void Supervisor::kill_hung_worker(pid_t pid, Clock::duration silent,
                                  std::vector<std::string> report) {
    auto found = workers_.find(pid);
    if (found == workers_.end() || found->second.reaped) return;
    WorkerProcess& worker = found->second;
    std::string name = "worker " + std::to_string(pid) + " (generation " +
                       std::to_string(worker.generation) + ") hung: ";
    for (const auto& line : report) log::error(name, line);
    if (worker.state == WorkerProcess::State::stopping) return;  // killed meanwhile
    log::error("worker ", pid, " (generation ", worker.generation, ") silent for ",
               static_cast<int>(seconds(silent)), "s: killing it with SIGABRT, then SIGKILL");
    ::kill(pid, SIGABRT);
    record_.event("worker " + std::to_string(pid) + " hung (silent " +
                  std::to_string(static_cast<int>(seconds(silent))) + "s): killed");
    worker.exit_cause = "hang";
    set_state(worker, WorkerProcess::State::stopping);
    worker.last_heard = Clock::now();  // starts the grace before SIGKILL
}

// Keep-alive connections stay where they were accepted, so a few clients that connect at
// once (a pool opening) can leave one worker with many and another with none, for as long
// as they live. Once a second, a worker with more than its share (2 or more above another's,
// by the heartbeats' counts) is asked to shed the rest to the master, which passes each to
// the worker with the fewest, as in a reload's handoff.
void Supervisor::even_out_connections() {
    if (phase_ != Phase::running || reloading_) return;
    auto now = Clock::now();
    std::vector<WorkerProcess*> sharing;
    std::uint64_t total = 0, fewest = UINT64_MAX, most = 0;
    auto load = [](const WorkerProcess& w) {
        return w.counters.active_connections + w.adoptions_since_heartbeat;
    };
    for (auto& [pid, worker] : workers_) {
        if (worker.retiring || worker.generation != generation_ || !accepts_now(worker, now)) {
            continue;
        }
        sharing.push_back(&worker);
        total += load(worker);
        fewest = std::min(fewest, load(worker));
        most = std::max(most, load(worker));
    }
    if (sharing.size() < 2 || most < fewest + 2) return;
    // Shares as even as can be: the busiest `rest` keep one more than the others.
    std::sort(sharing.begin(), sharing.end(),
              [&](const WorkerProcess* a, const WorkerProcess* b) { return load(*a) > load(*b); });
    std::uint64_t each = total / sharing.size(), rest = total % sharing.size();
    for (std::size_t i = 0; i < sharing.size(); ++i) {
        WorkerProcess* worker = sharing[i];
        std::uint64_t share = each + (i < rest ? 1 : 0);
        // Asked already, and not heard from since: its count does not show it yet.
        if (worker->last_heartbeat_at <= worker->shed_asked_at || load(*worker) <= share) {
            continue;
        }
        std::uint64_t extra = load(*worker) - share;
        log::debug("worker ", worker->pid, " has ", load(*worker), " connections, ", share,
                   " is its share: it sheds ", extra);
        worker->shed_asked_at = now;
        worker->control->send_in_order(control::Shed{extra}, {});
    }
}

// A worker that has served its --max-requests keeps serving until its replacement is
// ready (on_worker_ready), so capacity never drops.
void Supervisor::retire_worker(WorkerProcess& worker) {
    log::info("worker ", worker.pid, " served ", worker.counters.requests,
              " requests: replacing it");
    worker.retiring = true;
    worker.exit_cause = "recycle";
    manage_workers();
}

// Its keep-alive connections go to the workers that stay (HandOff), unless prefork stops
// or no worker is there to take them.
void Supervisor::drain_worker(WorkerProcess& worker, const char* cause) {
    if (worker.exit_cause.empty()) worker.exit_cause = cause;
    bool hand_off = phase_ == Phase::running && pick_adopter(worker.pid) != nullptr;
    // In order: after the connections already on their way to it, which it must take (and
    // pass on) before it drains.
    if (worker.control->is_open()) {
        worker.control->send_in_order(
            control::Drain{as_millis(options_.graceful_timeout).count(), hand_off}, {});
    } else {
        ::kill(worker.pid, SIGTERM);
    }
    set_state(worker, WorkerProcess::State::draining);
}

// As replacements become ready, drains one retiring worker for each, so that the ready
// workers never number fewer than the target: first one whose slot has a ready successor
// (its queue is served on), the oldest first.
void Supervisor::drain_replaced_workers() {
    for (;;) {
        int ready = 0;
        std::vector<bool> succeeded;  // by slot: a ready worker that is not retiring
        for (auto& [pid, worker] : workers_) {
            if (worker.state != WorkerProcess::State::ready) continue;
            ++ready;
            if (worker.retiring) continue;
            if (succeeded.size() <= std::size_t(worker.slot)) succeeded.resize(worker.slot + 1);
            succeeded[worker.slot] = true;
        }
        auto has_successor = [&](const WorkerProcess& w) {
            return std::size_t(w.slot) < succeeded.size() && succeeded[w.slot];
        };
        WorkerProcess* next = nullptr;
        for (auto& [pid, worker] : workers_) {
            if (worker.state != WorkerProcess::State::ready || !worker.retiring) continue;
            if (!next || has_successor(worker) > has_successor(*next) ||
                (has_successor(worker) == has_successor(*next) &&
                 worker.started_at < next->started_at)) {
                next = &worker;
            }
        }
        if (!next || ready <= target_workers_) return;
        drain_worker(*next, "reload");
    }
}

// Re-reads the configuration (command line, file, environment), moves the listeners to it,
// and starts a new generation of workers; the old one drains as the new one becomes ready.
// A configuration that does not parse or bind changes nothing.
void Supervisor::reload_configuration(bool upgrade) {
    if (!upgrade) notifier_.reloading();  // an upgrade's was sent before the exec
    Settings said;
    Options next;
    std::optional<UniqueFd> admin_listener;  // set: the admin endpoint moves (invalid: off)
    try {
        said = gather_settings(command_line_);
        next = check_settings(said);
        admin_listener = bind_changed_admin(next);
        strays_.watch({});  // before a removed listener closes: its number may come back
        listeners_.update(next.binds);
    } catch (const std::exception& error) {
        steer_connections();  // watching again
        log::error(upgrade ? "upgraded, but the new configuration cannot be loaded; the running "
                             "configuration and workers stay: "
                           : "reload failed, the running configuration stays: ",
                   error.what());
        record_.reload_failed();
        notifier_.ready(std::string("reload failed: ") + error.what());
        record_.event(std::string("reload failed: ") + error.what());
        if (upgrade) upgrade_done();
        return run_what_waited();
    }
    std::string changes = describe_changes(options_, next);
    keep_what_a_reload_cannot_change(next, options_);  // the pid file, written once at start
    options_ = std::move(next);
    settings_ = std::move(said);
    if (admin_listener) move_admin_endpoint(std::move(*admin_listener));
    log::set_format(options_.log_format);
    log::set_level(options_.log_level);
    target_workers_ = options_.workers;
    ++generation_;
    reloading_ = true;
    connections_moved_in_reload_ = 0;
    crash_loop_.reset();
    const char* verb = upgrade ? "upgrade" : "reload";
    log::info(verb, ": starting generation ", generation_, " (", changes, ")");
    if (!upgrade) record_.reload_started();
    record_.event(verb + (": generation " + std::to_string(generation_) + " (" + changes + ")"));

    for (auto& [pid, worker] : workers_) {
        if (worker.state == WorkerProcess::State::starting) {
            drain_worker(worker, verb);  // no capacity to keep: replace it at once
        } else if (worker.state == WorkerProcess::State::ready) {
            worker.retiring = true;  // serves until a worker of the new generation is ready
            worker.exit_cause = verb;
        }
    }
    manage_workers();
    steer_connections();  // an address the reload removed is watched no more
    finish_reload_if_done();
}

// The admin endpoint's new listening socket when a reload changes --admin (invalid: turned
// off), nullopt when it stays; throws AddressError when the new address cannot be bound.
std::optional<UniqueFd> Supervisor::bind_changed_admin(const Options& next) const {
    auto name = [](const Options& options) {
        return options.admin ? options.admin->to_string() : std::string();
    };
    if (name(next) == name(options_)) return std::nullopt;
    if (!next.admin) return UniqueFd();
    try {
        return bind_listener(*next.admin);
    } catch (const AddressError& error) {
        throw AddressError(std::string("admin endpoint: ") + error.what());
    }
}

void Supervisor::move_admin_endpoint(UniqueFd listener) {
    if (!listener) {
        log::info("admin endpoint off");
        if (admin_) admin_->stop_listening();
        return;
    }
    std::string name = options_.admin->to_string();
    log::info("admin endpoint on ", local_address(listener.get()), " (", name, ")");
    if (admin_) {
        admin_->listen(std::move(listener), name);
    } else {
        admin_ = std::make_unique<AdminServer>(io_, std::move(listener), name, *this);
    }
}

void Supervisor::finish_reload_if_done() {
    if (!reloading_) return;
    for (const auto& [pid, worker] : workers_) {
        if (worker.generation < generation_) return;
    }
    reloading_ = false;
    log::info("reload to generation ", generation_, " complete: the old generation has drained, ",
              connections_moved_in_reload_, " keep-alive connection",
              connections_moved_in_reload_ == 1 ? "" : "s", " handed over to the new one");
    if (upgrade_ == Upgrade::restored) upgrade_done();  // said before READY=1
    announced_ready_ = false;
    announce_ready_if_all_are();
    run_what_waited();
}

// A reload or an upgrade asked for while another ran, once none runs.
void Supervisor::run_what_waited() {
    if (phase_ != Phase::running || upgrade_ != Upgrade::none || reloading_) return;
    if (reload_queued_) {
        reload_queued_ = false;
        log::info("reloading again, as asked during the last reload or upgrade");
        return reload_configuration();  // a queued upgrade follows it in turn
    }
    if (upgrade_queued_) {
        upgrade_queued_ = false;
        log::info("upgrading again, as asked during the last reload or upgrade");
        start_upgrade(queued_upgrade_keeps_workers_);
    }
}

void Supervisor::stop_gracefully() {
    phase_ = Phase::stopping_gracefully;
    respawn_timer_.cancel();
    abandon_upgrade();
    close_listeners();
    for (auto& [pid, worker] : workers_) {
        if (worker.state != WorkerProcess::State::stopping) drain_worker(worker, "stop");
    }
    // The workers stop themselves at the deadline; this catches one that cannot.
    stop_timer_.expires_after(options_.graceful_timeout + 1s);
    stop_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        log::warning("graceful timeout: killing ", workers_.size(), " worker(s) still running");
        for (auto& [pid, worker] : workers_) ::kill(pid, SIGKILL);
    });
    finish_if_stopped();
}

void Supervisor::stop_now(int exit_status, std::string reason) {
    phase_ = Phase::stopping_now;
    exit_status_ = exit_status;
    stop_reason_ = std::move(reason);
    respawn_timer_.cancel();
    abandon_upgrade();
    close_listeners();
    for (auto& [pid, worker] : workers_) {
        ::kill(pid, SIGKILL);
        if (worker.exit_cause.empty()) worker.exit_cause = "stop";
        set_state(worker, WorkerProcess::State::stopping);
    }
    finish_if_stopped();
}

void Supervisor::finish_if_stopped() {
    if (phase_ == Phase::running || !workers_.empty()) return;
    io_.stop();
}

// --- what workers say and how they end ---------------------------------------------------

void Supervisor::on_worker_message(pid_t pid, control::Message message, std::vector<UniqueFd> fds) {
    auto found = workers_.find(pid);
    if (found == workers_.end()) return;
    WorkerProcess& worker = found->second;
    // Even from a worker that has exited meanwhile: the connection is in the message.
    if (auto* hand_off = std::get_if<control::HandOff>(&message)) {
        return forward_connection(worker, std::move(*hand_off), std::move(fds));
    }
    if (worker.reaped) {  // a dead worker's "ready" would count capacity that is not there
        if (auto* heartbeat = std::get_if<control::Heartbeat>(&message)) {
            worker.counters = *heartbeat;
            if (heartbeat->requests > 0 || heartbeat->active_connections > 0) {
                worker.had_traffic = true;
            }
        }
        return;
    }
    if (worker.state == WorkerProcess::State::stopping) return;  // being killed: not heard
    auto now = Clock::now();
    bool was_late = !accepts_now(worker, now);
    worker.last_heard = now;
    if (was_late && accepts_now(worker, now)) steer_connections();  // it is back

    if (auto* ready = std::get_if<control::Ready>(&message)) {
        worker.requests_in_flight = ready->requests_in_flight;
        return on_worker_ready(worker);
    }
    if (auto* heartbeat = std::get_if<control::Heartbeat>(&message)) {
        return on_worker_heartbeat(worker, *heartbeat);
    }
    if (auto* accepting = std::get_if<control::Accepting>(&message)) {
        log::debug("worker ", pid,
                   accepting->accepting ? ": accepting again"
                                        : ": not accepting (its connections are busy)");
        worker.accepting = accepting->accepting;
        return steer_connections();
    }
    if (std::holds_alternative<control::Draining>(message)) {
        log::debug("worker ", pid, ": stopped accepting, finishing in-flight requests");
        if (worker.state == WorkerProcess::State::starting ||
            worker.state == WorkerProcess::State::ready) {
            log::info("worker ", pid,
                      " is draining on its own (a signal sent to it): replacing it");
            if (worker.exit_cause.empty()) worker.exit_cause = "signal";
            worker.retiring = false;
            set_state(worker, WorkerProcess::State::draining);
            manage_workers();
        }
    }
}

// A connection handed off between requests (by a draining worker, or shed by a busy one)
// goes to the ready worker of the current generation with the fewest connections; with none
// (they all died), it is closed, as it would have been without handoff (a shed one goes
// back to its worker).
void Supervisor::forward_connection(WorkerProcess& from, control::HandOff hand_off,
                                    std::vector<UniqueFd> fds) {
    if (fds.size() != 1) {
        log::error("worker ", from.pid, " handed off a connection with ", fds.size(),
                   " descriptors; closing them");
        ++handoff_fallbacks_;
        return;
    }
    WorkerProcess* adopter = pick_adopter(from.pid);
    if (adopter == nullptr && accepts_now(from, Clock::now())) {
        adopter = &from;  // shed, and nobody has room now: back where it came from
    }
    if (adopter == nullptr) {
        ++handoff_fallbacks_;
        log::debug("no worker to take a connection from worker ", from.pid, ": closing it");
        return;
    }
    ++adopter->adoptions_since_heartbeat;
    if (from.generation < generation_) ++connections_moved_in_reload_;
    adopter->control->send_in_order(control::Adopt{std::move(hand_off.bytes), false, hand_off.tls},
                                    std::move(fds));
}

WorkerProcess* Supervisor::pick_adopter(pid_t from) {
    WorkerProcess* best = nullptr;
    auto load = [](const WorkerProcess& w) {
        return w.counters.active_connections + w.adoptions_since_heartbeat;
    };
    auto now = Clock::now();
    for (auto& [pid, worker] : workers_) {
        // Not one that hangs or is held up (its heartbeats late), nor one whose connections
        // are all busy (it would close one more).
        if (pid == from || worker.retiring || worker.generation != generation_ ||
            !accepts_now(worker, now)) {
            continue;
        }
        if (best == nullptr || load(worker) < load(*best)) best = &worker;
    }
    return best;
}

void Supervisor::on_worker_ready(WorkerProcess& worker) {
    if (worker.state != WorkerProcess::State::starting) return;
    set_state(worker, WorkerProcess::State::ready);
    crash_loop_.note_ready();
    log::info("worker ", worker.pid, " ready (generation ", worker.generation, ")");
    if (phase_ == Phase::delaying_shutdown && options_.shutdown_delay_auto) {
        watch_traffic_closely(worker);
    }
    announce_ready_if_all_are();
    drain_replaced_workers();
}

void Supervisor::on_worker_heartbeat(WorkerProcess& worker, const control::Heartbeat& heartbeat) {
    if (heartbeat.requests > worker.counters.requests ||
        heartbeat.connections_accepted > worker.counters.connections_accepted) {
        last_traffic_at_ = Clock::now();
    }
    worker.counters = heartbeat;
    worker.last_heartbeat_at = Clock::now();
    worker.adoptions_since_heartbeat = worker.control->waiting();
    if (heartbeat.requests > 0 || heartbeat.active_connections > 0) worker.had_traffic = true;
    if (worker.state != WorkerProcess::State::ready) return;
    if (worker.generation == generation_) {
        crash_loop_.note_alive(worker.started_at, worker.last_heard);
    }
    if (worker.max_requests > 0 && heartbeat.requests >= worker.max_requests && !worker.retiring &&
        phase_ == Phase::running) {
        retire_worker(worker);
    }
}

void Supervisor::on_worker_exit(pid_t pid, int wait_status) {
    if (check_ && pid == check_->pid()) return check_->exited(wait_status);
    auto found = workers_.find(pid);
    if (found == workers_.end()) {
        log::debug("reaped process ", pid, " (", describe_wait_status(wait_status), ")");
        return;
    }
    // What it said last (its first request, its final counts) may still wait on its socket.
    found->second.reaped = true;
    found->second.control->receive_queued();
    WorkerProcess worker = std::move(found->second);
    workers_.erase(found);
    // Connections on their way to it are lost with it (they close).
    handoff_fallbacks_ += worker.control->waiting() + worker.control->dropped();

    bool expected = phase_ != Phase::running || worker.state == WorkerProcess::State::draining;
    std::string cause = describe_wait_status(wait_status);
    bool told_to_go = worker.state == WorkerProcess::State::draining ||
                      worker.state == WorkerProcess::State::stopping;
    record_.worker_exited(worker.counters,
                          told_to_go && !worker.exit_cause.empty() ? worker.exit_cause
                          : phase_ != Phase::running               ? "stop"
                                                                   : "crash",
                          worker.slot);
    if (expected) {
        log::info("worker ", pid, " (generation ", worker.generation, ") ", cause, " after ",
                  uptime(worker));
    } else {
        log::error("worker ", pid, " (generation ", worker.generation, ") ", cause, " after ",
                   uptime(worker), "; replacing it");
        record_.event("worker " + std::to_string(pid) + " (generation " +
                      std::to_string(worker.generation) + ") " + cause + " after " +
                      uptime(worker));
        bool was_ready = worker.state != WorkerProcess::State::starting;
        if (CrashLoopGuard::is_failed_start(was_ready, worker.had_traffic,
                                            Clock::now() - worker.started_at)) {
            note_failed_start(cause + (was_ready ? " soon after starting, before any traffic"
                                                 : " before it was ready"));
        }
    }
    manage_workers();
    drain_replaced_workers();  // fewer workers wanted than are ready (a reload lowered it)
    steer_connections();
    finish_reload_if_done();
    finish_if_stopped();
}

// The worker command could not be run at all (removed by a deploy, not executable, out
// of descriptors). Logged once per run of failures: each retry comes later than the last.
void Supervisor::note_launch_failure(const std::string& error) {
    if (!crash_loop_.any_ready()) {
        // The first workers of a command that cannot run: trying again will not help.
        log::error("cannot start the worker command: ", error);
        return stop_now(1, "cannot start the worker command: " + error);
    }
    bool first = launch_failures_++ == 0;
    if (first) {
        log::error("cannot start a worker: ", error, " (retrying, ever less often)");
        record_.event("cannot start a worker: " + error);
    } else {
        log::debug("cannot start a worker (attempt ", launch_failures_, "): ", error);
    }
    note_failed_start(error, first);
}

// Spaces out the starts that follow a failed one, and gives up on a command that has
// never produced a ready worker.
void Supervisor::note_failed_start(const std::string& reason, bool log_it) {
    auto verdict = crash_loop_.note_failed_start(Clock::now());
    if (verdict.give_up) {
        std::string why = "the worker command failed " + std::to_string(verdict.in_a_row) +
                          " times before any worker was ready (last: " + reason + ")";
        log::error("giving up: ", why);
        record_.event("giving up: " + why);
        return stop_now(1, why);
    }
    if (!log_it) return;
    log::warning("crash loop: next worker in ", seconds(verdict.backoff), "s (", verdict.in_a_row,
                 " failed start", verdict.in_a_row == 1 ? "" : "s", " in a row)");
}

// READY=1 for systemd once the workers of the current generation are all ready (and, in a
// reload, the old generation has gone).
void Supervisor::announce_ready_if_all_are() {
    if (announced_ready_ || reloading_ || phase_ != Phase::running) return;
    int ready = 0;
    for (const auto& [pid, worker] : workers_) {
        if (worker.state == WorkerProcess::State::ready && worker.generation == generation_)
            ++ready;
    }
    if (ready < target_workers_) return;
    announced_ready_ = true;
    notifier_.ready(std::to_string(ready) + " workers ready, generation " +
                    std::to_string(generation_));
}

void Supervisor::set_state(WorkerProcess& worker, WorkerProcess::State state) {
    log::debug("worker ", worker.pid, ": ", state_name(worker.state), " -> ", state_name(state));
    worker.state = state;
    steer_connections();
}

// It takes connections from its slot's queue: ready, its heartbeats on time (a loop held up
// for a few seconds by a handler takes none meanwhile), not being reported as hung.
bool Supervisor::accepts_now(const WorkerProcess& worker, Clock::time_point now) const {
    return worker.state == WorkerProcess::State::ready && worker.accepting && !worker.reaped &&
           !worker.hang_report && worker.control->is_open() &&
           now - worker.last_heard <= std::min<Clock::duration>(kLateHeartbeat, options_.timeout);
}

// With per-slot queues: new connections go to the slots whose worker accepts, and those
// that wait in the other slots' queues go to the workers that do.
void Supervisor::steer_connections() {
    if (!listeners_.reuseport()) return;
    std::vector<int> accepting;
    auto now = Clock::now();
    if (serving()) {
        for (const auto& [pid, worker] : workers_) {
            if (accepts_now(worker, now)) accepting.push_back(worker.slot);
        }
    }
    listeners_.steer(accepting);
    strays_.watch(accepting.empty() ? std::vector<int>{} : listeners_.stray_fds(accepting));
}

void Supervisor::take_stray_connection(UniqueFd connection, bool tls) {
    WorkerProcess* adopter = pick_adopter(0);
    if (adopter == nullptr) return;  // asked just before: cannot happen
    ++adopter->adoptions_since_heartbeat;
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(connection));
    adopter->control->send_in_order(control::Adopt{{}, true, tls}, std::move(fds));
}

void Supervisor::close_listeners() {
    strays_.watch({});  // its duplicates would keep the sockets open
    listeners_.close_all();
}

std::uint64_t Supervisor::pick_max_requests() {
    if (options_.max_requests == 0) return 0;
    std::uint64_t jitter = 0;
    if (options_.max_requests_jitter > 0) {
        jitter =
            std::uniform_int_distribution<std::uint64_t>(0, options_.max_requests_jitter)(random_);
    }
    return options_.max_requests + jitter;
}

}  // namespace prefork::master

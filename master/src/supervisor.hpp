#pragma once

#include "admin_server.hpp"
#include "binary_check.hpp"
#include "crash_loop_guard.hpp"
#include "listener_set.hpp"
#include "options.hpp"
#include "signal_reader.hpp"
#include "stray_connections.hpp"
#include "supervision_record.hpp"
#include "systemd.hpp"
#include "worker_process.hpp"

#include <prefork/common/log_output.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <boost/json/object.hpp>
#include "ticket_keys.hpp"

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

namespace prefork::master {

// What this master is: its version, and what an upgrade (USR2) runs: the binary at the path
// it was first started from, with the arguments it was started with.
struct MasterIdentity {
    std::string version;
    std::string binary_path;
    std::vector<std::string> argv;  // argv[0] first
};

// The master's whole job, on one thread and one event loop: take the next signal or
// worker message, act on it, then keep the set of workers what it should be.
class Supervisor : public AdminActions {
  public:
    // `command_line` is kept to resolve the options again on each reload; `settings` is what
    // `options` were made of; `admin` is the admin endpoint's listening socket (invalid:
    // none).
    Supervisor(MasterIdentity identity, Settings command_line, Settings settings, Options options,
               ListenerSet listeners, UniqueFd admin, SystemdNotifier notifier);
    // The master an upgrade's exec started: it takes over the workers, counters and the rest
    // of `state` (the old image's save_state()); throws upgrade::StateError.
    Supervisor(MasterIdentity identity, Settings command_line, Settings settings, Options options,
               ListenerSet listeners, UniqueFd admin, SystemdNotifier notifier,
               const boost::json::object& state);

    // Starts the workers and supervises them until prefork stops; returns the exit status.
    int run();

    // The admin endpoint's view and controls.
    StatusReport status() const override;
    void reload() override;
    void stop() override;
    bool scale(int workers, std::string& error) override;
    bool upgrade(bool keep_workers, std::string& error) override;

  private:
    // delaying_shutdown: TERM came with --shutdown-delay; not ready, still serving.
    enum class Phase { running, delaying_shutdown, stopping_gracefully, stopping_now };

    // Signals.
    static const std::vector<int>& handled_signals();
    void handle_signal(int signal);
    void handle_term(const char* name);
    void handle_quit();
    void delay_shutdown(const char* name);
    void watch_traffic_closely(WorkerProcess& worker);
    void wait_for_quiet();
    bool traffic_has_stopped() const;
    void handle_ttin();
    void handle_ttou();
    void handle_hup();
    void handle_usr1();

    // Upgrades in place (supervisor_upgrade.cpp).
    void request_upgrade(bool keep_workers, const std::string& source);
    void start_upgrade(bool keep_workers);
    void on_upgrade_checked(BinaryCheck::Result result);
    void exec_when_sent(Clock::time_point give_up_at);
    void exec_new_image();
    void upgrade_failed(const std::string& reason);
    void upgrade_done();
    void run_what_waited();
    void abandon_upgrade();
    boost::json::object save_state() const;
    std::uint64_t dropped_on_control_sockets() const;
    void restore_state(const boost::json::object& state);
    boost::json::array ticket_keys_json() const;
    void restore_ticket_keys(const boost::json::object& state);
    void finish_restoring();

    // The verbs.
    void tick();
    void manage_workers();
    void start_worker();
    bool send_tls(WorkerProcess& worker);
    void rotate_ticket_keys();
    void schedule_ticket_rotation();
    void listen_to(WorkerProcess& worker);
    void reap_workers();
    void murder_workers();
    void even_out_connections();
    void kill_hung_worker(pid_t pid, Clock::duration silent, std::vector<std::string> report);
    int free_slot() const;
    void retire_worker(WorkerProcess& worker);
    void check_memory();
    void drain_worker(WorkerProcess& worker, const char* cause);
    void drain_replaced_workers();
    void reload_configuration(bool upgrade = false);
    std::optional<UniqueFd> bind_changed_admin(const Options& next) const;
    void move_admin_endpoint(UniqueFd listener);
    void make_descriptors_for_a_start();
    void finish_reload_if_done();
    void drain_youngest_workers(int keep);
    void stop_gracefully();
    void stop_now(int exit_status, std::string reason);
    void finish_if_stopped();

    // What workers say and how they end.
    void on_worker_message(pid_t pid, control::Message message, std::vector<UniqueFd> fds);
    void forward_connection(WorkerProcess& from, control::HandOff hand_off,
                            std::vector<UniqueFd> fds);
    WorkerProcess* pick_adopter(pid_t from);
    void on_worker_ready(WorkerProcess& worker);
    void on_worker_heartbeat(WorkerProcess& worker, const control::Heartbeat& heartbeat);
    void on_worker_exit(pid_t pid, int wait_status);
    void note_failed_start(const std::string& reason, bool log_it = true);
    void note_launch_failure(const std::string& error);

    void set_state(WorkerProcess& worker, WorkerProcess::State state);
    bool accepts_now(const WorkerProcess& worker, Clock::time_point now) const;
    void steer_connections();
    void take_stray_connection(UniqueFd connection, bool tls);
    void close_listeners();
    void announce_ready_if_all_are();
    bool serving() const { return phase_ == Phase::running || phase_ == Phase::delaying_shutdown; }
    int active_workers() const;
    std::uint64_t pick_max_requests();

    boost::asio::io_context io_;
    log::LogOutput log_output_;  // stderr never blocks this loop
    SignalReader signals_;
    boost::asio::steady_timer tick_timer_;
    boost::asio::steady_timer memory_timer_;
    boost::asio::steady_timer quiet_timer_;  // --shutdown-delay auto: has traffic stopped?
    Clock::time_point last_traffic_at_{};    // a worker last reported a new connection or request
    boost::asio::steady_timer respawn_timer_;
    boost::asio::steady_timer stop_timer_;
    MasterIdentity identity_;
    Settings command_line_;
    Settings settings_;  // what options_ were made of (an upgraded master runs by the same)
    Options options_;
    ListenerSet listeners_;
    StrayConnections strays_;  // per-slot queues: what waits where no worker accepts
    std::map<pid_t, WorkerProcess> workers_;
    int target_workers_;
    int generation_ = 1;
    Phase phase_ = Phase::running;
    int exit_status_ = 0;
    std::string stop_reason_;
    std::minstd_rand random_;
    std::size_t descriptor_limit_;
    bool reloading_ = false;  // an older generation is still running
    bool reload_queued_ = false;
    std::uint64_t connections_moved_in_reload_ = 0;  // handed off by older generations
    std::uint64_t handoff_fallbacks_ = 0;            // connections the master had to close

    SystemdNotifier notifier_;
    bool announced_ready_ = false;  // READY=1 sent for the current generation

    // What the admin endpoint reports.
    std::unique_ptr<AdminServer> admin_;
    Clock::time_point started_at_ = Clock::now();
    SupervisionRecord record_;

    // Upgrades (USR2): the check of the new binary, then the exec.
    enum class Upgrade { none, checking, sending, restored };  // restored: its reload runs
    Upgrade upgrade_ = Upgrade::none;
    bool upgrade_keeps_workers_ = false;
    bool upgrade_queued_ = false;  // asked during an upgrade or a reload: follows it
    bool queued_upgrade_keeps_workers_ = false;
    std::unique_ptr<BinaryCheck> check_;
    dev_t checked_device_ = 0;  // the file the check ran: the exec must run the same
    ino_t checked_inode_ = 0;
    boost::asio::steady_timer upgrade_timer_;

    TicketKeys ticket_keys_;  // TLS session tickets: the workers' shared keys
    boost::asio::steady_timer ticket_timer_;
    Clock::time_point upgrade_started_at_{};
    std::uint64_t upgrades_ = 0;
    std::uint64_t upgrade_failures_ = 0;
    std::string last_upgrade_;                    // when, UTC, as the log writes it; empty: never
    std::string upgraded_from_;                   // the version before the last upgrade
    std::uint64_t log_lines_dropped_before_ = 0;  // by the images before this one

    CrashLoopGuard crash_loop_;
    int launch_failures_ = 0;            // in a row: the first is logged, the rest only counted
    Clock::time_point delay_ends_at_{};  // of --shutdown-delay, once TERM came
};

}  // namespace prefork::master

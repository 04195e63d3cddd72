// The supervisor as the admin endpoint sees it: its status, and the controls it offers.

#include "supervisor.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/post.hpp>

#include <unistd.h>

#include <cmath>
#include <fstream>

namespace prefork::master {

namespace {

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

StatusReport Supervisor::status() const {
    StatusReport report;
    auto now = Clock::now();
    report.version = identity_.version;
    report.binary_path = identity_.binary_path;
    report.upgrades = upgrades_;
    report.upgrade_failures = upgrade_failures_;
    report.last_upgrade = last_upgrade_;
    report.upgraded_from = upgraded_from_;
    report.master_pid = ::getpid();
    report.phase = phase_ == Phase::running ? "running" : "stopping";
    report.target_workers = target_workers_;
    report.generation = generation_;
    report.uptime_seconds = seconds(now - started_at_);
    record_.fill(report);
    for (const auto& [pid, worker] : workers_) {
        if (worker.state == WorkerProcess::State::ready && phase_ == Phase::running)
            report.ready = true;
        report.workers.push_back({pid, worker.generation, worker.slot, state_name(worker.state),
                                  worker.retiring, seconds(now - worker.started_at),
                                  seconds(now - worker.last_heard), resident_bytes(pid),
                                  worker.counters});
        report.totals.add(worker.counters);
        report.slots[worker.slot].connections_accepted += worker.counters.connections_accepted;
        report.slots[worker.slot].requests += worker.counters.requests;
    }
    report.totals.handoff_fallbacks += handoff_fallbacks_;
    report.log_lines_dropped += log_lines_dropped_before_;
    report.listen_queues = listeners_.reuseport() ? "per-slot" : "shared";
    report.connections_rescued = strays_.rescued();
    if (options_.tls) {
        const tls::Certificate& certificate = options_.tls->certificate;
        double left =
            static_cast<double>(certificate.not_after) -
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        for (const ListenAddress& address : options_.binds) {
            if (!address.tls) continue;
            report.tls.push_back({address.to_string(), certificate.subject, certificate.serial,
                                  certificate.not_after, std::floor(left)});
        }
    }
    return report;
}

void Supervisor::reload() {
    handle_hup();
}

// A graceful stop, whatever came before: during --shutdown-delay it cuts the delay short
// (a second TERM stops at once instead, as a second Ctrl-C would).
void Supervisor::stop() {
    // After the 202 is on its way: with no worker left, the loop would end at once.
    boost::asio::post(io_, [this] {
        if (phase_ == Phase::running) return handle_term("the admin endpoint's stop");
        if (phase_ != Phase::delaying_shutdown) return;
        log::info("admin: stop during the shutdown delay: stopping gracefully now");
        stop_gracefully();
    });
}

bool Supervisor::scale(int workers, std::string& error) {
    if (workers < 1 || workers > 1024) {
        error = "workers must be from 1 to 1024";
        return false;
    }
    if (phase_ != Phase::running) {
        error = "prefork is stopping";
        return false;
    }
    log::info("admin: scaling to ", workers, " workers");
    target_workers_ = workers;
    drain_youngest_workers(workers);
    manage_workers();
    return true;
}

// Drains the youngest active workers until `keep` are left: the older ones have warm caches.
void Supervisor::drain_youngest_workers(int keep) {
    while (active_workers() > keep) {
        WorkerProcess* youngest = nullptr;
        for (auto& [pid, worker] : workers_) {
            if (worker.is_active() && (!youngest || worker.started_at > youngest->started_at)) {
                youngest = &worker;
            }
        }
        drain_worker(*youngest, "scale");
    }
}

}  // namespace prefork::master

#include "control_client.hpp"

#include "fork_guard.hpp"
#include "requests_in_flight.hpp"
#include "server.hpp"

#include <prefork/common/log.hpp>

#include <unistd.h>

namespace prefork {

ControlClient::ControlClient(boost::asio::io_context& io, UniqueFd control_socket, Server& server,
                             std::function<void()> on_stopped)
    : channel_(io, std::move(control_socket)),
      server_(server),
      heartbeat_timer_(io),
      on_stopped_(std::move(on_stopped)) {}

void ControlClient::start() {
    channel_.start(
        [this](control::Message message, std::vector<UniqueFd> fds) {
            on_message(std::move(message), std::move(fds));
        },
        [this] { on_master_gone(); });
    schedule_heartbeat();
}

void ControlClient::on_message(control::Message message, std::vector<UniqueFd> fds) {
    if (auto* listeners = std::get_if<control::Listeners>(&message)) {
        return on_listeners(*listeners, std::move(fds));
    }
    if (auto* drain_order = std::get_if<control::Drain>(&message)) {
        return drain(std::chrono::milliseconds(drain_order->timeout_ms), drain_order->hand_off);
    }
    if (auto* adopt = std::get_if<control::Adopt>(&message)) {
        if (fds.size() != 1) {
            log::error("control socket: a connection to adopt came with ", fds.size(),
                       " descriptors; ignoring it");
            return;
        }
        if (adopt->fresh) return server_.adopt_new_client(std::move(fds[0]), adopt->tls);
        return server_.adopt(std::move(fds[0]), std::move(adopt->bytes), adopt->tls);
    }
    if (auto* credentials = std::get_if<control::TlsCredentials>(&message)) {
        server_.set_tls_credentials(*credentials);  // a listener without them says so
        return;
    }
    if (auto* keys = std::get_if<control::TicketKeys>(&message)) {
        return server_.set_ticket_keys(*keys);
    }
    if (auto* shed = std::get_if<control::Shed>(&message)) {
        return server_.shed(static_cast<std::size_t>(shed->connections));
    }
    if (auto* interval = std::get_if<control::HeartbeatInterval>(&message)) {
        heartbeat_interval_ = std::chrono::milliseconds(interval->interval_ms);
        if (!stopping_) schedule_heartbeat();  // once stopping, that timer is the deadline
        return;
    }
    if (std::holds_alternative<control::ReopenLogs>(message)) {
        server_.access_log().reopen();
        log::debug("access log reopened");
        return;
    }
    log::warning("control socket: unexpected message from the master: ", control::encode(message));
}

void ControlClient::on_listeners(const control::Listeners& listeners, std::vector<UniqueFd> fds) {
    if (fds.size() != listeners.names.size()) {
        log::error("control socket: ", listeners.names.size(), " listener names but ", fds.size(),
                   " descriptors; ignoring the message");
        return;
    }
    graceful_timeout_ = std::chrono::milliseconds(listeners.graceful_timeout_ms);
    if (server_.draining()) return;  // told to stop before it started: the fds just close
    // Tell the master at once, not at the next heartbeat: under load a second is many
    // requests, and a worker that dies serving its first one did not fail to start.
    server_.set_request_limit(listeners.max_requests, [this] { send_heartbeat(); });
    server_.on_accepting_changed(
        [this](bool accepting) { channel_.send_in_order(control::Accepting{accepting}, {}); });
    server_.shed_connections_to([this](UniqueFd connection, std::string bytes, bool tls) {
        send_to_master(std::move(connection), std::move(bytes), tls);
    });
    for (std::size_t i = 0; i < fds.size(); ++i)
        server_.listen(std::move(fds[i]), listeners.names[i]);
    channel_.send(
        control::Ready{::getpid(), reinterpret_cast<std::uintptr_t>(&requests_in_flight())});
    log::debug("accepting on ", fds.size(), " listener(s), generation ", listeners.generation);
}

void ControlClient::send_to_master(UniqueFd connection, std::string bytes, bool tls) {
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(connection));
    channel_.send_in_order(control::HandOff{std::move(bytes), tls}, std::move(fds));
}

void ControlClient::drain(std::chrono::milliseconds timeout, bool hand_off) {
    if (server_.draining()) {
        // Handing off, then told to stop (TERM during a reload): nobody will take them now.
        if (!hand_off) server_.stop_handing_off();
        return;
    }
    channel_.send(control::Draining{});
    if (hand_off) {
        server_.hand_off_connections([this](UniqueFd connection, std::string bytes, bool tls) {
            send_to_master(std::move(connection), std::move(bytes), tls);
        });
    }
    server_.drain(timeout, [this] { stop(); });
}

// The connections handed off are sent first (the master takes them as it can, within the
// graceful timeout); the last heartbeat carries the final counts, so the master's totals
// miss nothing.
void ControlClient::stop() {
    stopping_ = true;
    heartbeat_timer_.cancel();
    auto finish = [this] {
        if (!on_stopped_) return;
        send_heartbeat();
        std::exchange(on_stopped_, nullptr)();
    };
    if (channel_.waiting() > 0) {
        heartbeat_timer_.expires_after(graceful_timeout_);
        heartbeat_timer_.async_wait([this, finish](boost::system::error_code ec) {
            if (ec) return;
            log::warning("the master has not taken ", channel_.waiting(),
                         " handed-off connection(s) in time: closing them");
            finish();
        });
    }
    channel_.when_sent(finish);
}

// The master died (or closed our socket): nobody will hand out new work or wait for us.
// Stop accepting so that the port is released, finish what is in flight, and exit.
void ControlClient::on_master_gone() {
    fork_guard::remove(channel_.native_handle());
    heartbeat_timer_.cancel();
    server_.stop_handing_off();  // nobody will take them: the rest end here
    if (server_.draining()) return;
    log::warning("the master is gone: draining and exiting");
    server_.drain(graceful_timeout_, [this] { stop(); });
}

void ControlClient::schedule_heartbeat() {
    heartbeat_timer_.expires_after(heartbeat_interval_);
    heartbeat_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        send_heartbeat();
        schedule_heartbeat();
    });
}

// Behind handed-off connections still waiting, in order: the socket is full anyway.
void ControlClient::send_heartbeat() {
    server_.shed(0);  // the master asks again, from these counts, if it still wants to
    control::Heartbeat heartbeat{server_.counters()};
    heartbeat.handoff_fallbacks += channel_.dropped();
    if (channel_.waiting() > 0) return channel_.send_in_order(heartbeat, {});
    channel_.send(heartbeat);
}

}  // namespace prefork

#pragma once

#include <prefork/common/control_channel.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>

namespace prefork {

class Server;

// The worker's side of the control socket (fd 3): takes its listening sockets and the
// order to drain from the master, and tells the master it is ready, alive, and draining.
class ControlClient {
  public:
    ControlClient(boost::asio::io_context& io, UniqueFd control_socket, Server& server,
                  std::function<void()> on_stopped);

    void start();
    // Drains the server and tells the master; with `hand_off`, the keep-alive connections
    // go to the master for a worker of the current generation. Without a timeout, the
    // graceful timeout the master gave, nothing handed off (used on SIGTERM).
    void drain(std::chrono::milliseconds timeout, bool hand_off);
    void drain() { drain(graceful_timeout_, false); }

  private:
    void on_message(control::Message message, std::vector<UniqueFd> fds);
    void on_listeners(const control::Listeners& listeners, std::vector<UniqueFd> fds);
    void on_master_gone();
    // Sends a connection to the master (HandOff), in order after what waits to go.
    void send_to_master(UniqueFd connection, std::string bytes, bool tls);
    void send_heartbeat();
    void stop();
    void schedule_heartbeat();

    ControlChannel channel_;
    Server& server_;
    boost::asio::steady_timer heartbeat_timer_;
    std::function<void()> on_stopped_;
    std::chrono::milliseconds graceful_timeout_{30'000};
    std::chrono::milliseconds heartbeat_interval_{1000};  // the master may ask for another
    bool stopping_ = false;
};

}  // namespace prefork

#pragma once

#include "status_report.hpp"

#include <prefork/common/acceptor.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <list>
#include <memory>
#include <string>

namespace prefork::master {

// What the admin endpoint can see and do: the supervisor's side of it.
class AdminActions {
  public:
    virtual ~AdminActions() = default;
    virtual StatusReport status() const = 0;
    virtual void reload() = 0;
    virtual void stop() = 0;
    // Keeps `workers` workers from now on; false (and why) for a number out of range.
    virtual bool scale(int workers, std::string& error) = 0;
    // Upgrades the master in place (USR2), replacing the workers too unless `keep_workers`;
    // false (and why) when it cannot be asked now.
    virtual bool upgrade(bool keep_workers, std::string& error) = 0;
};

class AdminConnection;

// The admin endpoint (--admin), served by the master's own event loop, never by a
// worker, so it answers while workers crash, hang or reload:
//   GET /healthz, /readyz, /metrics, /status, /status.json; POST /reload, /stop,
//   /scale?workers=N, /upgrade[?workers=keep]
// Bounded, so that no client of it can take from the master what supervising needs: at
// most kMaxConnections at once, each with a few seconds to send its request, and never so
// many that fewer than kDescriptorReserve descriptors are left for starting workers.
class AdminServer {
  public:
    using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
    using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

    static constexpr std::size_t kMaxConnections = 64;
    static constexpr std::size_t kDescriptorReserve = 16;

    AdminServer(boost::asio::io_context& io, UniqueFd listener, std::string name,
                AdminActions& actions);
    ~AdminServer();
    AdminServer(const AdminServer&) = delete;
    AdminServer& operator=(const AdminServer&) = delete;

    // Accepts on another listening socket from now on (a reload changed --admin); the
    // connections open on the old one finish.
    void listen(UniqueFd listener, std::string name);
    // Stops accepting (a reload turned the endpoint off).
    void stop_listening();
    // Leaves new connections in the listening socket's queue for now (an upgrade's exec is
    // coming: its new image takes them), and takes them again.
    void pause();
    void resume();
    const std::string& name() const { return name_; }
    // The listening socket (-1: none), for an upgrade's exec to keep open.
    int listener_fd() const;

    // Closes up to `count` connections that have not sent a whole request yet, the oldest
    // first; returns how many it closed.
    std::size_t shed(std::size_t count);
    std::size_t connection_count() const { return connections_.size(); }

    HttpResponse answer(const HttpRequest& request);

  private:
    friend class AdminConnection;
    using Connections = std::list<std::shared_ptr<AdminConnection>>;

    void on_accepted(UniqueFd socket, int family);
    bool make_room();
    bool descriptors_to_spare() const;
    void forget(Connections::iterator connection) { connections_.erase(connection); }

    boost::asio::io_context& io_;
    AdminActions& actions_;
    std::string name_;
    std::unique_ptr<Acceptor> acceptor_;
    Connections connections_;  // oldest first
    std::size_t descriptor_limit_;
};

}  // namespace prefork::master

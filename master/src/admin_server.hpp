#pragma once

#include "status_report.hpp"

#include <prefork/common/acceptor.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

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
};

// The admin endpoint (--admin), served by the master's own event loop, never by a
// worker, so it answers while workers crash, hang or reload:
//   GET /healthz, /readyz, /metrics, /status, /status.json; POST /reload, /stop, /scale?workers=N
class AdminServer {
  public:
    using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
    using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

    AdminServer(boost::asio::io_context& io, UniqueFd listener, std::string name,
                AdminActions& actions);

    HttpResponse answer(const HttpRequest& request);

  private:
    void on_accepted(UniqueFd socket, int family);

    boost::asio::io_context& io_;
    AdminActions& actions_;
    Acceptor acceptor_;
};

}  // namespace prefork::master

#include "admin_server.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <memory>

namespace prefork::master {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr auto kConnectionTimeout = std::chrono::seconds(10);

// One request, one response, then close: the admin endpoint is for probes and people.
class AdminConnection : public std::enable_shared_from_this<AdminConnection> {
  public:
    AdminConnection(asio::generic::stream_protocol::socket socket, AdminServer& server)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {}

    void start() {
        timer_.expires_after(kConnectionTimeout);
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec) self->close();
        });
        parser_.header_limit(8 * 1024);
        parser_.body_limit(64 * 1024);
        http::async_read(
            socket_, buffer_, parser_,
            [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    }

  private:
    void on_read(error_code ec) {
        if (ec) return close();
        response_ = server_.answer(parser_.get());
        response_.set(http::field::server, "prefork");
        response_.set(http::field::cache_control, "no-store");
        response_.keep_alive(false);
        response_.prepare_payload();
        if (parser_.get().method() == http::verb::head) {
            auto length = response_.body().size();
            response_.body().clear();
            response_.content_length(length);
        }
        http::async_write(socket_, response_,
                          [self = shared_from_this()](error_code, std::size_t) { self->close(); });
    }

    void close() {
        error_code ignored;
        timer_.cancel();
        socket_.shutdown(asio::socket_base::shutdown_both, ignored);
        socket_.close(ignored);
    }

    asio::generic::stream_protocol::socket socket_;
    asio::steady_timer timer_;
    AdminServer& server_;
    boost::beast::flat_buffer buffer_;
    http::request_parser<http::string_body> parser_;
    AdminServer::HttpResponse response_;
};

AdminServer::HttpResponse text(unsigned status, std::string body,
                               const char* type = "text/plain; charset=utf-8") {
    AdminServer::HttpResponse response{static_cast<http::status>(status), 11};
    response.set(http::field::content_type, type);
    response.body() = std::move(body);
    return response;
}

std::string_view query_value(std::string_view target, std::string_view name) {
    auto mark = target.find('?');
    if (mark == std::string_view::npos) return {};
    std::string_view rest = target.substr(mark + 1);
    while (!rest.empty()) {
        auto amp = rest.find('&');
        std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.substr(0, pair.find('=')) == name) {
            return pair.find('=') == std::string_view::npos ? std::string_view{}
                                                            : pair.substr(pair.find('=') + 1);
        }
    }
    return {};
}

}  // namespace

AdminServer::AdminServer(asio::io_context& io, UniqueFd listener, std::string name,
                         AdminActions& actions)
    : io_(io),
      actions_(actions),
      acceptor_(io, std::move(listener), std::move(name),
                [this](UniqueFd socket, int family) { on_accepted(std::move(socket), family); }) {
    acceptor_.start();
}

void AdminServer::on_accepted(UniqueFd socket, int family) {
    asio::generic::stream_protocol::socket stream(io_);
    error_code ec;
    stream.assign(asio::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP),
                  socket.get(), ec);
    if (ec) return;
    (void)socket.release();
    std::make_shared<AdminConnection>(std::move(stream), *this)->start();
}

AdminServer::HttpResponse AdminServer::answer(const HttpRequest& request) {
    std::string_view target(request.target().data(), request.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    bool get = request.method() == http::verb::get || request.method() == http::verb::head;
    bool post = request.method() == http::verb::post;

    auto wrong_method = [](const char* allow) {
        auto response = text(405, "405 Method Not Allowed\n");
        response.set(http::field::allow, allow);
        return response;
    };
    if (path == "/healthz") return get ? text(200, "ok\n") : wrong_method("GET, HEAD");
    if (path == "/readyz") {
        if (!get) return wrong_method("GET, HEAD");
        return actions_.status().ready ? text(200, "ready\n") : text(503, "not ready\n");
    }
    if (path == "/metrics") {
        if (!get) return wrong_method("GET, HEAD");
        return text(200, to_prometheus(actions_.status()),
                    "text/plain; version=0.0.4; charset=utf-8");
    }
    if (path == "/status") {
        if (!get) return wrong_method("GET, HEAD");
        return text(200, to_html(actions_.status()), "text/html; charset=utf-8");
    }
    if (path == "/status.json") {
        if (!get) return wrong_method("GET, HEAD");
        return text(200, to_json(actions_.status()), "application/json");
    }
    if (path == "/reload") {
        if (!post) return wrong_method("POST");
        log::info("admin: reload requested");
        actions_.reload();
        return text(202, "reloading\n");
    }
    if (path == "/stop") {
        if (!post) return wrong_method("POST");
        log::info("admin: stop requested");
        actions_.stop();
        return text(202, "stopping\n");
    }
    if (path == "/scale") {
        if (!post) return wrong_method("POST");
        std::string_view value = query_value(target, "workers");
        int workers = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), workers);
        std::string error = "expected /scale?workers=N";
        if (value.empty() || ec != std::errc{} || end != value.data() + value.size() ||
            !actions_.scale(workers, error)) {
            return text(400, error + "\n");
        }
        return text(200, "scaling to " + std::to_string(workers) + " workers\n");
    }
    return text(404, "404 Not Found\n");
}

}  // namespace prefork::master

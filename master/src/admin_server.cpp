#include "admin_server.hpp"

#include <prefork/common/descriptor_limit.hpp>
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

// A probe or a person sends the request at once; a client that trickles it is cut off.
constexpr auto kRequestTimeout = std::chrono::seconds(5);
// To write the answer (a /metrics page) to a client that reads slowly.
constexpr auto kResponseTimeout = std::chrono::seconds(10);
constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kBodyLimit = 4 * 1024;  // no endpoint takes a body

AdminServer::HttpResponse text(unsigned status, std::string body,
                               const char* type = "text/plain; charset=utf-8");

bool is_http_error(error_code ec) {
    return ec.category() == http::make_error_code(http::error::bad_target).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message;
}

}  // namespace

// One request, one response, then close: the admin endpoint is for probes and people.
class AdminConnection : public std::enable_shared_from_this<AdminConnection> {
  public:
    AdminConnection(asio::generic::stream_protocol::socket socket, AdminServer& server)
        : socket_(std::move(socket)), timer_(socket_.get_executor()), server_(server) {}

    void start(AdminServer::Connections::iterator self_in_list) {
        self_in_list_ = self_in_list;
        arm_timer(kRequestTimeout);
        parser_.header_limit(kHeaderLimit);
        parser_.body_limit(kBodyLimit);
        http::async_read(
            socket_, buffer_, parser_,
            [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    }

    // The whole request is here: it is being answered.
    bool has_request() const { return has_request_; }

    void close() {
        if (closed_) return;
        closed_ = true;
        error_code ignored;
        timer_.cancel();
        socket_.shutdown(asio::socket_base::shutdown_both, ignored);
        socket_.close(ignored);
        server_.forget(self_in_list_);  // may release the last owner: nothing after this
    }

  private:
    void arm_timer(std::chrono::seconds timeout) {
        timer_.expires_after(timeout);
        timer_.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec) self->close();
        });
    }

    void on_read(error_code ec) {
        if (closed_) return;
        if (ec && !is_http_error(ec)) return close();
        has_request_ = true;
        arm_timer(kResponseTimeout);
        if (ec == http::error::body_limit) {
            response_ = text(413, "413 Content Too Large\n");
        } else if (ec == http::error::header_limit) {
            response_ = text(431, "431 Request Header Fields Too Large\n");
        } else if (ec) {
            response_ = text(400, "400 Bad Request\n");
        } else {
            response_ = server_.answer(parser_.get());
        }
        response_.set(http::field::server, "prefork");
        response_.set(http::field::cache_control, "no-store");
        response_.keep_alive(false);
        response_.prepare_payload();
        if (!ec && parser_.get().method() == http::verb::head) {
            auto length = response_.body().size();
            response_.body().clear();
            response_.content_length(length);
        }
        http::async_write(socket_, response_,
                          [self = shared_from_this()](error_code, std::size_t) { self->close(); });
    }

    asio::generic::stream_protocol::socket socket_;
    asio::steady_timer timer_;
    AdminServer& server_;
    AdminServer::Connections::iterator self_in_list_;
    boost::beast::flat_buffer buffer_;
    http::request_parser<http::string_body> parser_;
    AdminServer::HttpResponse response_;
    bool has_request_ = false;
    bool closed_ = false;
};

namespace {

AdminServer::HttpResponse text(unsigned status, std::string body, const char* type) {
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
    : io_(io), actions_(actions), descriptor_limit_(open_file_limit()) {
    listen(std::move(listener), std::move(name));
}

AdminServer::~AdminServer() {
    while (!connections_.empty()) {
        auto connection = connections_.front();  // close() erases it from the list
        connection->close();
    }
}

void AdminServer::listen(UniqueFd listener, std::string name) {
    stop_listening();
    name_ = std::move(name);
    acceptor_ = std::make_unique<Acceptor>(
        io_, std::move(listener), name_,
        [this](UniqueFd socket, int family) { on_accepted(std::move(socket), family); });
    acceptor_->start();
}

void AdminServer::stop_listening() {
    if (acceptor_) acceptor_->close();
    acceptor_.reset();
}

void AdminServer::pause() {
    if (acceptor_) acceptor_->pause();
}

void AdminServer::resume() {
    if (acceptor_) acceptor_->resume();
}

int AdminServer::listener_fd() const {
    return acceptor_ ? acceptor_->native_handle() : -1;
}

void AdminServer::on_accepted(UniqueFd socket, int family) {
    if (!make_room()) {
        log::warning("admin endpoint: ", connections_.size(),
                     " connections are all being answered: refused one");
        return;  // `socket` closes it
    }
    asio::generic::stream_protocol::socket stream(io_);
    error_code ec;
    stream.assign(asio::generic::stream_protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP),
                  socket.get(), ec);
    if (ec) return;
    (void)socket.release();
    auto connection = std::make_shared<AdminConnection>(std::move(stream), *this);
    connections_.push_back(connection);
    connection->start(std::prev(connections_.end()));
}

// Counting the accepted connection that waits for a place: closes the oldest that has not
// sent its request while there are too many, so that a fresh probe is answered while one
// client holds many connections. False when every connection is being answered.
bool AdminServer::make_room() {
    while (!connections_.empty() &&
           (connections_.size() >= kMaxConnections || !descriptors_to_spare())) {
        if (shed(1) == 0) return false;
    }
    return true;
}

bool AdminServer::descriptors_to_spare() const {
    auto open = open_descriptor_count();
    return !open || *open + kDescriptorReserve <= descriptor_limit_;
}

std::size_t AdminServer::shed(std::size_t count) {
    std::size_t closed = 0;
    for (auto it = connections_.begin(); it != connections_.end() && closed < count;) {
        auto connection = *it++;  // close() erases it from the list
        if (connection->has_request()) continue;
        connection->close();
        ++closed;
    }
    return closed;
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
    if (path == "/upgrade") {
        if (!post) return wrong_method("POST");
        std::string_view workers = query_value(target, "workers");
        if (!workers.empty() && workers != "keep" && workers != "replace") {
            return text(400, "expected /upgrade or /upgrade?workers=keep|replace\n");
        }
        log::info("admin: upgrade requested", workers == "keep" ? " (keeping the workers)" : "");
        std::string error;
        if (!actions_.upgrade(workers == "keep", error)) return text(409, error + "\n");
        return text(202, "upgrading\n");
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

#include "server.hpp"

#include "connection.hpp"

#include <prefork/common/log.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

namespace prefork {

Server::Server(boost::asio::io_context& io, const Router& router, ServerLimits limits)
    : io_(io), router_(router), limits_(limits), drain_deadline_(io) {}

Server::~Server() {
    on_stopped_ = nullptr;
    auto remaining = std::move(connections_);
    connections_.clear();
    for (auto& [raw, connection] : remaining) connection->close();
}

void Server::listen(UniqueFd listener, std::string name) {
    auto acceptor = std::make_unique<Acceptor>(
        io_, std::move(listener), std::move(name),
        [this](UniqueFd socket, int family) { on_accepted(std::move(socket), family); });
    acceptor->start();
    acceptors_.push_back(std::move(acceptor));
}

void Server::on_accepted(UniqueFd socket, int family) {
    int protocol = 0;
    if (family == AF_INET || family == AF_INET6) {
        protocol = IPPROTO_TCP;
        int one = 1;  // responses go out whole; Nagle would only delay them
        ::setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    boost::system::error_code ec;
    Connection::Socket stream(io_);
    stream.assign(boost::asio::generic::stream_protocol(family, protocol), socket.get(), ec);
    if (ec) {
        log::error("cannot take accepted connection: ", ec.message());
        return;  // `socket` closes it
    }
    (void)socket.release();  // now owned by `stream`
    auto connection = std::make_shared<Connection>(std::move(stream), *this);
    connections_.emplace(connection.get(), connection);
    connection->start();
}

void Server::set_request_limit(std::uint64_t limit, std::function<void()> on_reached) {
    request_limit_ = limit;
    on_request_limit_ = std::move(on_reached);
}

void Server::count_request() {
    if (++counters_.requests == request_limit_ && on_request_limit_) on_request_limit_();
}

void Server::remove(Connection* connection) {
    connections_.erase(connection);
    stop_if_drained();
}

void Server::drain(std::chrono::milliseconds timeout, std::function<void()> on_stopped) {
    if (draining_) return;
    draining_ = true;
    on_stopped_ = std::move(on_stopped);
    for (auto& acceptor : acceptors_) acceptor->close();
    acceptors_.clear();
    log::info("draining: listeners closed, ", connections_.size(), " connection(s) open");

    drain_deadline_.expires_after(timeout);
    drain_deadline_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        log::warning("graceful timeout: closing ", connections_.size(), " connection(s)");
        auto remaining = connections_;  // close() removes from connections_
        for (auto& [raw, connection] : remaining) connection->close();
        connections_.clear();
        stop_if_drained();
    });
    // Copy: a connection that closes at once removes itself while we iterate.
    auto current = connections_;
    for (auto& [raw, connection] : current) connection->drain();
    stop_if_drained();
}

void Server::stop_if_drained() {
    if (!draining_ || !connections_.empty() || !on_stopped_) return;
    drain_deadline_.cancel();
    auto on_stopped = std::exchange(on_stopped_, nullptr);
    on_stopped();
}

}  // namespace prefork

#include "client_load.hpp"

#include "http_client.hpp"

#include <memory>

namespace prefork::testing {

ClientLoad::ClientLoad(std::uint16_t port, std::string target, std::string expected_body,
                       int keep_alive_clients, int new_connection_clients,
                       std::chrono::milliseconds max_duration, int max_requests_per_client)
    : port_(port),
      target_(std::move(target)),
      expected_body_(std::move(expected_body)),
      deadline_(std::chrono::steady_clock::now() + max_duration),
      max_requests_(max_requests_per_client) {
    for (int i = 0; i < keep_alive_clients; ++i)
        threads_.emplace_back([this] { run_client(true); });
    for (int i = 0; i < new_connection_clients; ++i)
        threads_.emplace_back([this] { run_client(false); });
}

ClientLoad::~ClientLoad() {
    stop();
}

ClientLoad::Result ClientLoad::stop() {
    stopping_ = true;
    return wait();
}

ClientLoad::Result ClientLoad::wait() {
    for (auto& thread : threads_) {
        if (thread.joinable()) thread.join();
    }
    std::lock_guard lock(errors_mutex_);
    return {ok_.load(), failed_.load(), errors_};
}

void ClientLoad::record_failure(const std::string& what) {
    ++failed_;
    std::lock_guard lock(errors_mutex_);
    if (errors_.size() < 10) errors_.push_back(what);
}

void ClientLoad::run_client(bool keep_alive) {
    std::unique_ptr<HttpConnection> connection;
    for (int i = 0; i < max_requests_ && !stopping_ && std::chrono::steady_clock::now() < deadline_;
         ++i) {
        try {
            if (!connection) connection = std::make_unique<HttpConnection>(port_);
            auto response = connection->get(target_);
            if (response.result_int() != 200 || response.body() != expected_body_) {
                record_failure("status " + std::to_string(response.result_int()) + " body " +
                               response.body().substr(0, 80));
            } else {
                ++ok_;
            }
            if (!keep_alive || !response.keep_alive()) connection.reset();
        } catch (const std::exception& error) {
            record_failure(error.what());
            connection.reset();
        }
    }
}

}  // namespace prefork::testing

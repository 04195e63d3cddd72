#pragma once

#include <prefork/response.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace prefork {

class Connection;

namespace detail {

// What a Responder and its connection share. `connection` is only ever touched on the
// loop; the flags are what another thread may look at.
struct PendingResponse {
    boost::asio::any_io_executor loop;
    std::weak_ptr<Connection> connection;
    std::uint64_t request_id = 0;
    std::atomic<bool> sent{false};
    std::atomic<bool> abandoned{false};  // the connection can no longer take a response
};

}  // namespace detail
}  // namespace prefork

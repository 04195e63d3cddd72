#pragma once

#include <prefork/response.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace prefork {

class Connection;

namespace detail {

struct StreamChannel;

// What a Responder and its connection share. `connection` is only ever touched on the
// loop; the flags are what another thread may look at.
struct PendingResponse {
    boost::asio::any_io_executor loop;
    std::thread::id loop_thread;
    std::weak_ptr<Connection> connection;
    std::uint64_t request_id = 0;
    std::atomic<bool> sent{false};
    std::atomic<bool> abandoned{false};  // the connection can no longer take a response

    // On the loop: the response can no longer reach the client. Runs the on_disconnect
    // callback, once.
    void abandon();
    // Any thread: `callback` runs on the loop when the response is abandoned (at once, posted,
    // if it was already), unless the response has been handed over.
    void on_disconnect(std::function<void()> callback);
    // Any thread, once the Responder's send() has claimed the response: false when it was
    // abandoned already; otherwise the on_disconnect callback will never run (the client
    // may still leave before the response is written, but the handler is done with it).
    bool hand_over();
    // Any thread: the stream this request's handler started; abandon() closes it (at once
    // if the response was abandoned already).
    void attach_stream(const std::shared_ptr<StreamChannel>& channel);

  private:
    std::mutex mutex_;  // guards what follows (registered from any thread)
    std::function<void()> disconnect_callback_;
    bool handed_over_ = false;
    std::weak_ptr<StreamChannel> stream_;
};

}  // namespace detail
}  // namespace prefork

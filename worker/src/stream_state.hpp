#pragma once

#include <prefork/stream.hpp>

#include "pending_response.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace prefork {

class Connection;

namespace detail {

// The parts of one streamed response, between the writers (any thread) and the connection
// that writes them (on the loop). Everything below the mutex is guarded by it.
struct StreamChannel : std::enable_shared_from_this<StreamChannel> {
    boost::asio::any_io_executor loop;
    std::thread::id loop_thread;
    std::weak_ptr<Connection> connection;
    std::shared_ptr<PendingResponse> pending;  // the request's; carries on_disconnect
    std::size_t limit = 0;

    std::mutex mutex;
    std::condition_variable room;   // writers waiting for the buffer to drain
    std::deque<std::string> parts;  // queued, not yet taken by the connection
    std::size_t buffered = 0;       // bytes queued or being written
    bool finished = false;          // finish() was called
    bool cut_off = false;           // the last Stream handle went away without finish()
    bool closed = false;            // the connection takes no more parts (done, or gone)
    bool kick_posted = false;       // the connection has been told to look
    std::chrono::milliseconds idle_timeout{0};  // Stream::set_idle_timeout; 0: none
    std::string waiting_part;                   // an async_write's part that waits for room
    std::shared_ptr<StreamWaiter> waiter;

    // With the mutex held: makes sure the connection looks at the channel soon.
    void kick(std::unique_lock<std::mutex>& lock);
    // On the loop, by the connection: nothing more goes out; writers and a waiting
    // async_write are told so.
    void close();
};

// What the Stream handles share: the last one gone without finish() cuts the response off.
struct StreamState {
    explicit StreamState(std::shared_ptr<StreamChannel> c) : channel(std::move(c)) {}
    StreamState(const StreamState&) = delete;
    StreamState& operator=(const StreamState&) = delete;
    ~StreamState();
    std::shared_ptr<StreamChannel> channel;
};

}  // namespace detail
}  // namespace prefork

#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace prefork {

namespace detail {
struct StreamState;
// Completes an async_write that waited for room (on the worker's loop).
struct StreamWaiter {
    virtual ~StreamWaiter() = default;
    virtual void complete(boost::system::error_code ec) = 0;
};
void stream_async_write(const std::shared_ptr<StreamState>& state, std::string data,
                        std::shared_ptr<StreamWaiter> waiter);
// Where a completion runs when its handler names no executor: the worker's loop.
boost::asio::any_io_executor stream_executor(const std::shared_ptr<StreamState>& state);
}  // namespace detail

// A response sent in parts as they become ready (Transfer-Encoding: chunked; to an HTTP/1.0
// client, the parts and then the end of the connection). Start one with
// Responder::stream(head).
//
// The parts wait in a bounded buffer until the client takes them: a writer to a slow
// client waits once `limit` bytes are queued, so a worker never holds more than that per
// stream. From a thread, write() waits (blocks that thread); on the worker's loop,
// async_write() completes once the part is queued. Either fails once the client has gone.
//
// Every copy of a Stream handle refers to the same response. finish() ends it; if the last
// handle goes away without finish(), the response is cut off (the connection is reset
// without the final chunk, so the client can tell it is incomplete).
class Stream {
  public:
    Stream() = default;
    explicit Stream(std::shared_ptr<detail::StreamState> state);
    Stream(const Stream&) = default;
    Stream& operator=(const Stream&) = default;
    Stream(Stream&&) noexcept = default;
    Stream& operator=(Stream&&) noexcept = default;
    ~Stream() = default;

    // From any thread but the worker's loop: queues `data` as the next part, first waiting
    // while the stream holds its limit of unwritten bytes. Returns false, dropping `data`,
    // when the client is gone or the stream was finished. An empty `data` is a no-op.
    // Throws std::logic_error on the worker's loop, where waiting would stop the very
    // writes it waits for: use async_write there.
    bool write(std::string data);

    // On the worker's loop (a coroutine: `co_await stream.async_write(part, use_awaitable)`;
    // a callback): queues `data` once there is room, then completes with an empty error
    // code; with operation_aborted when the client is gone or the stream was finished.
    // One async_write at a time per stream.
    template <class CompletionToken>
    auto async_write(std::string data, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [state = state_](auto handler, std::string data) {
                using Handler = decltype(handler);
                struct Waiter : detail::StreamWaiter {
                    Waiter(Handler h, boost::asio::any_io_executor l)
                        : handler(std::move(h)), loop(std::move(l)) {}
                    Handler handler;
                    boost::asio::any_io_executor loop;
                    void complete(boost::system::error_code ec) override {
                        auto executor = boost::asio::get_associated_executor(handler, loop);
                        boost::asio::post(
                            executor, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
                    }
                };
                auto loop = detail::stream_executor(state);
                detail::stream_async_write(state, std::move(data),
                                           std::make_shared<Waiter>(std::move(handler), loop));
            },
            token, std::move(data));
    }

    // In a coroutine on the worker's loop: queues `data` once there is room, and says whether
    // it could: false when the client is gone or the stream was finished.
    //   if (!co_await stream.async_write(part)) co_return;  // the client left
    // Once the handler is cancelled (the client left, the handler timeout passed) the await
    // throws operation_aborted instead, as every await of a cancelled coroutine does.
    boost::asio::awaitable<bool> async_write(std::string data);

    // Ends the response (the final chunk) once every queued part is written. From any
    // thread. Returns false when it was finished already or the client is gone.
    bool finish();

    // Cuts the response off (as a drop without finish() would) when no part has been
    // written for `timeout` while the client keeps up: for a stream that may go quiet for
    // good, such as events whose source died. The client vanishing without a word is found
    // apart from this, by TCP keepalive. Zero (the default): no idle timeout. From any thread.
    void set_idle_timeout(std::chrono::milliseconds timeout);

    // False once the client is gone, the stream was finished, or the response was cut off.
    bool is_open() const;
    // Bytes queued and not yet written to the client.
    std::size_t buffered() const;

    // As Responder::on_disconnect: `callback` runs on the loop if the client goes away
    // before the stream is finished.
    void on_disconnect(std::function<void()> callback);

  private:
    std::shared_ptr<detail::StreamState> state_;
};

namespace detail {
// Takes its Stream by value: the coroutine keeps the response it writes to.
inline boost::asio::awaitable<bool> write_part(Stream stream, std::string data) {
    boost::system::error_code ec;
    co_await stream.async_write(std::move(data),
                                boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    co_return !ec;
}
}  // namespace detail

inline boost::asio::awaitable<bool> Stream::async_write(std::string data) {
    return detail::write_part(*this, std::move(data));
}

}  // namespace prefork

#pragma once

#include <prefork/response.hpp>
#include <prefork/stream.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>

namespace prefork {

namespace detail {
struct PendingResponse;
}

// The right to answer one request later, from any thread.
//
// A handler that takes a Responder returns at once and sends the response when it has
// it: from a timer on the worker's loop, from a thread pool, from anywhere. The write
// itself always happens on the worker's event loop. Movable, not copyable.
class Responder {
  public:
    explicit Responder(std::shared_ptr<detail::PendingResponse> pending);
    Responder(Responder&&) noexcept;
    Responder& operator=(Responder&&) noexcept;
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;
    // Destroyed without sending: the client gets 500 (and the log a line), so no
    // connection waits forever.
    ~Responder();

    // Sends `response`; safe from any thread. Returns false, and does nothing, when it was
    // sent already or the connection can no longer take it (the client left, the worker
    // stopped).
    bool send(Response response);

    // Starts a streamed response instead (see <prefork/stream.hpp>): `head`'s status and
    // headers go out now (its body is ignored), then the parts written to the Stream, until
    // Stream::finish(). At most `limit` bytes wait unwritten; writers wait beyond that.
    // Like send(), once only: afterwards send() reports false. Safe from any thread. The
    // Stream is closed at once (writes report false) when the client is gone already.
    Stream stream(Response head, std::size_t limit = 256 * 1024);

    // Registers `callback` to run on the worker's event loop if the response can no longer
    // reach the client: the client disconnected, the handler timeout passed, or the
    // connection was closed. Use it to stop work that no one waits for any more (a
    // process, a query). Never runs once the response was handed over with send(). Safe
    // from any thread; a second registration replaces the first; runs at once (posted to
    // the loop) when the client is gone already.
    void on_disconnect(std::function<void()> callback);

    // The worker's event loop: run timers and other asynchronous work of the handler here.
    // Valid for the whole life of the Responder, even once it has been moved from.
    boost::asio::any_io_executor executor() const;

  private:
    std::shared_ptr<detail::PendingResponse> pending_;
    boost::asio::any_io_executor loop_;  // kept by a moved-from Responder too
};

}  // namespace prefork

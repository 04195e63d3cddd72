#include <prefork/responder.hpp>

#include "connection.hpp"
#include "pending_response.hpp"
#include "stream_state.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/post.hpp>

#include <exception>
#include <utility>

namespace prefork {
namespace {

void deliver(std::shared_ptr<detail::PendingResponse> pending, Response response) {
    boost::asio::any_io_executor loop = pending->loop;
    boost::asio::post(loop,
                      [pending = std::move(pending), response = std::move(response)]() mutable {
                          if (auto connection = pending->connection.lock()) {
                              connection->complete(pending->request_id, std::move(response));
                          }
                      });
}

}  // namespace

namespace detail {

void PendingResponse::abandon() {
    std::function<void()> callback;
    std::shared_ptr<StreamChannel> stream;
    {
        std::lock_guard lock(mutex_);
        abandoned = true;
        callback = std::move(disconnect_callback_);
        disconnect_callback_ = nullptr;
        stream = stream_.lock();
        stream_.reset();
    }
    if (stream) stream->close();
    if (!callback) return;
    try {
        callback();
    } catch (const std::exception& error) {
        log::error("an on_disconnect callback threw: ", error.what());
    } catch (...) {
        log::error("an on_disconnect callback threw a non-standard exception");
    }
}

void PendingResponse::attach_stream(const std::shared_ptr<StreamChannel>& channel) {
    {
        std::lock_guard lock(mutex_);
        if (!abandoned.load()) {
            stream_ = channel;
            return;
        }
    }
    channel->close();
}

void PendingResponse::on_disconnect(std::function<void()> callback) {
    std::function<void()> dropped;  // destroyed outside the lock
    {
        std::lock_guard lock(mutex_);
        if (handed_over_) {
            dropped = std::move(callback);
            return;
        }
        if (!abandoned.load()) {
            dropped = std::exchange(disconnect_callback_, std::move(callback));
            return;
        }
    }
    if (callback) boost::asio::post(loop, std::move(callback));
}

bool PendingResponse::hand_over() {
    std::function<void()> dropped;
    std::lock_guard lock(mutex_);
    if (abandoned.load()) return false;
    handed_over_ = true;
    dropped = std::move(disconnect_callback_);
    disconnect_callback_ = nullptr;
    return true;
}

}  // namespace detail

Responder::Responder(std::shared_ptr<detail::PendingResponse> pending)
    : pending_(std::move(pending)), loop_(pending_ ? pending_->loop : nullptr) {}
Responder::Responder(Responder&& other) noexcept
    : pending_(std::move(other.pending_)), loop_(other.loop_) {}

Responder& Responder::operator=(Responder&& other) noexcept {
    if (this != &other) {
        Responder dropped(std::move(*this));  // answers 500 if it had not sent
        pending_ = std::move(other.pending_);
        loop_ = other.loop_;
    }
    return *this;
}

Responder::~Responder() {
    if (!pending_ || pending_->sent.exchange(true)) return;
    if (!pending_->hand_over()) return;
    // Unwinding: the handler threw, and the one who catches it says so.
    if (std::uncaught_exceptions() == 0) {
        log::error("a handler dropped its Responder without sending: answering 500");
    }
    deliver(std::move(pending_), Response::error(500));
}

bool Responder::send(Response response) {
    if (!pending_ || pending_->sent.exchange(true)) return false;
    if (!pending_->hand_over()) return false;
    deliver(pending_, std::move(response));
    return true;
}

void Responder::on_disconnect(std::function<void()> callback) {
    if (pending_) pending_->on_disconnect(std::move(callback));
}

boost::asio::any_io_executor Responder::executor() const {
    return loop_;
}

}  // namespace prefork

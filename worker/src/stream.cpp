#include <prefork/responder.hpp>
#include <prefork/stream.hpp>

#include "connection.hpp"
#include "stream_state.hpp"

#include <prefork/common/log.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>

#include <stdexcept>

namespace prefork {

namespace asio = boost::asio;
using boost::system::error_code;

namespace detail {

void StreamChannel::kick(std::unique_lock<std::mutex>&) {
    if (kick_posted) return;
    kick_posted = true;
    asio::post(loop, [self = shared_from_this()] {
        if (auto connection = self->connection.lock()) connection->on_stream_kick(self);
    });
}

void StreamChannel::close() {
    std::shared_ptr<StreamWaiter> left_waiting;
    {
        std::lock_guard lock(mutex);
        closed = true;
        parts.clear();
        waiting_part.clear();
        buffered = 0;
        left_waiting = std::move(waiter);
        waiter.reset();
    }
    room.notify_all();
    if (left_waiting) left_waiting->complete(asio::error::operation_aborted);
}

StreamState::~StreamState() {
    std::unique_lock lock(channel->mutex);
    if (channel->finished || channel->closed) return;
    channel->cut_off = true;
    channel->kick(lock);
}

void stream_async_write(const std::shared_ptr<StreamState>& state, std::string data,
                        std::shared_ptr<StreamWaiter> waiter) {
    if (!state) return waiter->complete(asio::error::operation_aborted);
    StreamChannel& channel = *state->channel;

    error_code result;
    {
        std::unique_lock lock(channel.mutex);
        if (channel.closed || channel.finished) {
            result = asio::error::operation_aborted;
        } else if (channel.waiter) {
            result = asio::error::already_started;  // one async_write at a time
        } else if (data.empty()) {
            // nothing to queue
        } else if (channel.buffered < channel.limit) {
            channel.buffered += data.size();
            channel.parts.push_back(std::move(data));
            channel.kick(lock);
        } else {  // full: the connection queues it, and completes, once there is room
            channel.waiting_part = std::move(data);
            channel.waiter = std::move(waiter);
            return;
        }
    }
    waiter->complete(result);
}

}  // namespace detail

boost::asio::any_io_executor detail::stream_executor(const std::shared_ptr<StreamState>& state) {
    if (state) return state->channel->loop;
    return boost::asio::any_io_executor(boost::asio::system_executor());
}

Stream::Stream(std::shared_ptr<detail::StreamState> state) : state_(std::move(state)) {}

bool Stream::write(std::string data) {
    if (!state_) return false;
    detail::StreamChannel& channel = *state_->channel;
    if (std::this_thread::get_id() == channel.loop_thread) {
        throw std::logic_error(
            "Stream::write on the worker's loop would block it: use Stream::async_write");
    }
    std::unique_lock lock(channel.mutex);
    channel.room.wait(lock, [&] {
        return channel.closed || channel.finished || channel.buffered < channel.limit;
    });
    if (channel.closed || channel.finished) return false;
    if (data.empty()) return true;
    channel.buffered += data.size();
    channel.parts.push_back(std::move(data));
    channel.kick(lock);
    return true;
}

bool Stream::finish() {
    if (!state_) return false;
    detail::StreamChannel& channel = *state_->channel;
    {
        std::unique_lock lock(channel.mutex);
        if (channel.closed || channel.finished) return false;
        channel.finished = true;
        channel.kick(lock);
    }
    channel.room.notify_all();
    return true;
}

void Stream::set_idle_timeout(std::chrono::milliseconds timeout) {
    if (!state_) return;
    std::unique_lock lock(state_->channel->mutex);
    state_->channel->idle_timeout = timeout;
    if (!state_->channel->closed) state_->channel->kick(lock);  // the connection arms it
}

bool Stream::is_open() const {
    if (!state_) return false;
    std::lock_guard lock(state_->channel->mutex);
    return !state_->channel->closed && !state_->channel->finished;
}

std::size_t Stream::buffered() const {
    if (!state_) return 0;
    std::lock_guard lock(state_->channel->mutex);
    return state_->channel->buffered;
}

void Stream::on_disconnect(std::function<void()> callback) {
    if (state_) state_->channel->pending->on_disconnect(std::move(callback));
}

Stream Responder::stream(Response head, std::size_t limit) {
    if (!pending_ || pending_->sent.exchange(true) || pending_->abandoned.load()) return Stream();
    auto channel = std::make_shared<detail::StreamChannel>();
    channel->loop = pending_->loop;
    channel->loop_thread = pending_->loop_thread;
    channel->connection = pending_->connection;
    channel->pending = pending_;
    channel->limit = limit == 0 ? 1 : limit;

    // Until the connection has started the stream, closing the connection (or the
    // handler's failure) reaches the channel through the request (PendingResponse::abandon),
    // so no writer waits on a stream whose start never comes.
    pending_->attach_stream(channel);
    asio::post(pending_->loop, [pending = pending_, channel, head = std::move(head)]() mutable {
        auto connection = pending->connection.lock();
        if (!connection || !connection->start_stream(pending->request_id, std::move(head), channel))
            channel->close();  // the request was answered otherwise (503, 500) or is gone
    });
    return Stream(std::make_shared<detail::StreamState>(std::move(channel)));
}

}  // namespace prefork

#include "stream_writer.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>

namespace prefork {

namespace asio = boost::asio;

namespace {
constexpr std::string_view kCrLf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
}  // namespace

void StreamWriter::start(std::shared_ptr<detail::StreamChannel> channel, bool chunked,
                         bool has_body) {
    channel_ = std::move(channel);
    parts_.clear();
    payload_ = 0;
    bytes_ = 0;
    chunked_ = chunked;
    has_body_ = has_body;
    ending_ = false;
    idle_timeout_ = std::chrono::milliseconds(0);
    writing_ = true;  // the head
}

std::shared_ptr<detail::StreamChannel> StreamWriter::stop() {
    writing_ = false;
    return std::move(channel_);
}

StreamWriter::Next StreamWriter::next(std::vector<asio::const_buffer>& out) {
    bool finished = false;
    bool cut_off = false;
    {
        std::lock_guard lock(channel_->mutex);
        channel_->kick_posted = false;
        for (auto& part : channel_->parts) {
            payload_ += part.size();
            parts_.push_back(std::move(part));
        }
        channel_->parts.clear();
        finished = channel_->finished;
        cut_off = channel_->cut_off;
        idle_timeout_ = channel_->idle_timeout;
    }
    out.clear();
    if (!parts_.empty()) {
        if (chunked_) {
            std::array<char, 20> digits{};
            auto [end, ec] =
                std::to_chars(digits.data(), digits.data() + digits.size(), payload_, 16);
            chunk_size_line_.assign(digits.data(), end);
            chunk_size_line_ += kCrLf;
            out.push_back(asio::buffer(chunk_size_line_));
        }
        for (const auto& part : parts_) out.push_back(asio::buffer(part));
        if (chunked_) out.push_back(asio::buffer(kCrLf.data(), kCrLf.size()));
        writing_ = true;
        return Next::write;
    }
    if (finished) {
        if (!chunked_) return Next::end;
        ending_ = true;
        writing_ = true;
        out.push_back(asio::buffer(kLastChunk.data(), kLastChunk.size()));
        return Next::write;
    }
    return cut_off ? Next::cut_off : Next::wait;
}

bool StreamWriter::written(std::size_t bytes) {
    bytes_ += bytes;
    writing_ = false;
    return ending_ || !has_body_;
}

void StreamWriter::give_back_room() {
    std::shared_ptr<detail::StreamWaiter> resumed;
    {
        std::lock_guard lock(channel_->mutex);
        channel_->buffered -= std::min(channel_->buffered, payload_);
        if (channel_->waiter && channel_->buffered < channel_->limit) {
            channel_->buffered += channel_->waiting_part.size();
            channel_->parts.push_back(std::move(channel_->waiting_part));
            channel_->waiting_part.clear();
            resumed = std::move(channel_->waiter);
            channel_->waiter.reset();
        }
    }
    channel_->room.notify_all();
    parts_.clear();
    payload_ = 0;
    if (resumed) resumed->complete({});
}

}  // namespace prefork

#pragma once

#include "stream_state.hpp"

#include <boost/asio/buffer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefork {

// The connection's side of a streamed response, on the loop: takes the parts that the
// writers (any thread) queued on the channel, frames each batch (HTTP/1.1: one chunk per
// batch, then the last chunk; HTTP/1.0: the parts as they are, the end of the connection
// ending the body), and gives the room back to the writers once a batch is written.
class StreamWriter {
  public:
    // What to do after next().
    enum class Next {
        write,    // write the buffers next() filled in
        end,      // the response is complete
        cut_off,  // the handler dropped the stream before finish(): reset the connection
        wait,     // nothing to write yet: the channel kicks the connection when there is
    };

    // A stream starts; its head is being written.
    void start(std::shared_ptr<detail::StreamChannel> channel, bool chunked, bool has_body);
    bool active() const { return channel_ != nullptr; }
    const std::shared_ptr<detail::StreamChannel>& channel() const { return channel_; }
    // Ends the stream (no writer may write to it any more); the channel, for what follows.
    std::shared_ptr<detail::StreamChannel> stop();

    // Takes what the channel holds and says what follows; for Next::write, `out` holds the
    // framed batch (valid until written()).
    Next next(std::vector<boost::asio::const_buffer>& out);

    // The write of the head or of a batch is done (`bytes` of it went out). True when the
    // response is complete (the last chunk, or a response without a body).
    bool written(std::size_t bytes);
    // After a batch that was not the last: frees its room for the writers, and resumes an
    // async_write that waited for it.
    void give_back_room();

    bool writing() const { return writing_; }
    std::uint64_t bytes() const { return bytes_; }  // written so far, head included
    std::chrono::milliseconds idle_timeout() const { return idle_timeout_; }

  private:
    std::shared_ptr<detail::StreamChannel> channel_;
    std::vector<std::string> parts_;  // the batch being written
    std::size_t payload_ = 0;         // its bytes
    std::string chunk_size_line_;     // "1f40\r\n" of the batch being written
    std::uint64_t bytes_ = 0;
    bool writing_ = false;
    bool chunked_ = true;
    bool has_body_ = true;                       // false for HEAD, 204, 304
    bool ending_ = false;                        // the last chunk is being written
    std::chrono::milliseconds idle_timeout_{0};  // 0: none
};

}  // namespace prefork

#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace prefork {

// A connection's input: bytes read and not yet parsed, in one block that never grows past
// its maximum (the header limit and a margin), and that is given back while the
// connection is idle, so an idle keep-alive connection holds no buffer at all.
class ReadBuffer {
  public:
    explicit ReadBuffer(std::size_t max_size) : max_size_(max_size) {}

    std::string_view data() const { return {block_.get() + begin_, end_ - begin_}; }
    std::size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }

    // Room for the next read at the end: the unparsed bytes are moved to the front first,
    // and the block grows (doubling, from `initial` bytes) up to the maximum. Empty when the
    // buffer is full.
    std::pair<char*, std::size_t> prepare(std::size_t initial = 1024) {
        if (begin_ > 0) {
            std::memmove(block_.get(), block_.get() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (end_ == capacity_ && capacity_ < max_size_) {
            std::size_t grown =
                capacity_ == 0 ? std::min(initial, max_size_) : std::min(capacity_ * 2, max_size_);
            auto block = std::make_unique_for_overwrite<char[]>(grown);
            if (end_ > 0) std::memcpy(block.get(), block_.get(), end_);
            block_ = std::move(block);
            capacity_ = grown;
        }
        return {block_.get() + end_, capacity_ - end_};
    }
    void commit(std::size_t bytes) { end_ += bytes; }
    void consume(std::size_t bytes) {
        begin_ += bytes;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    void clear() { begin_ = end_ = 0; }
    // Gives the block back (when the connection goes idle with nothing buffered).
    void release() {
        if (!empty()) return;
        block_.reset();
        capacity_ = 0;
    }

  private:
    std::unique_ptr<char[]> block_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0, end_ = 0;
    std::size_t max_size_;
};

}  // namespace prefork

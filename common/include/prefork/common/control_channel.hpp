#pragma once

#include <prefork/common/control_protocol.hpp>
#include <prefork/common/fd_passing.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace prefork {

// One end of a master/worker control socket (AF_UNIX, SOCK_SEQPACKET) on an event loop:
// receives datagrams as they come and sends without blocking. Lives on one thread.
class ControlChannel {
  public:
    // Called with each decoded message and the descriptors that came with it.
    using MessageHandler = std::function<void(control::Message, std::vector<UniqueFd>)>;
    // Called once when the peer has gone (end of stream or a receive error).
    using ClosedHandler = std::function<void()>;

    ControlChannel(boost::asio::io_context& io, UniqueFd socket);

    void start(MessageHandler on_message, ClosedHandler on_closed);

    // Sends one message; false (and one log line) when it cannot be sent now.
    bool send(const control::Message& message, std::span<const int> fds = {});

    // Sends one message now, or as soon as the socket has room for it, after the ones
    // waiting already: for messages that must not be lost to a peer slow to read (a
    // connection handed off: a burst of them fills the socket's buffer). The descriptors
    // stay open until they are sent; those still waiting when the channel closes are
    // dropped (closed) and counted in dropped().
    void send_in_order(const control::Message& message, std::vector<UniqueFd> fds);
    // Messages waiting to be sent by send_in_order.
    std::size_t waiting() const { return outgoing_.size(); }
    // Messages of send_in_order that were dropped: the channel closed first.
    std::size_t dropped() const { return dropped_; }
    // Calls `callback` once nothing waits to be sent (at once when nothing does), or when
    // the channel closes.
    void when_sent(std::function<void()> callback);

    // Handles every message already waiting on the socket now, without waiting for more
    // (the master reads what a worker said last, and the connections it handed off, before
    // it judges the worker's death).
    void receive_queued();

    void close();
    bool is_open() const { return descriptor_.is_open(); }
    int native_handle() { return descriptor_.native_handle(); }

  private:
    // Messages handled per wake-up, at most.
    static constexpr std::size_t kMessagesPerTurn = 64;
    enum class Receive { more, closed };

    void do_wait();
    void on_readable();
    Receive receive_queued(std::size_t limit);
    void on_peer_gone();
    void send_waiting();
    void drop_waiting();
    bool something_to_read();

    struct Outgoing {
        std::string payload;
        std::vector<UniqueFd> fds;
    };

    boost::asio::posix::stream_descriptor descriptor_;
    MessageHandler on_message_;
    ClosedHandler on_closed_;
    std::deque<Outgoing> outgoing_;
    bool write_waiting_ = false;
    std::size_t dropped_ = 0;
    std::function<void()> on_sent_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // expires with the channel
};

// A connected pair of control sockets, both close-on-exec and non-blocking.
struct ControlSocketPair {
    UniqueFd master_end;
    UniqueFd worker_end;
};
ControlSocketPair make_control_socket_pair();

}  // namespace prefork

#pragma once

#include <boost/asio/io_context.hpp>
// After io_context: Asio's detail headers assume its declarations.
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>

#include <cstdint>
#include <memory>

namespace prefork {

// A wait for a descriptor to become readable that costs no system call, for a descriptor
// that was read until empty (or that has just entered epoll).
//
// Asio's epoll reactor registers every descriptor once, edge-triggered for input, and keeps
// per descriptor whether an edge has come since an operation last found the input exhausted
// (the reactor's "speculative" flag). Its async_wait ignores that flag and re-arms the edge
// with an epoll_ctl on every wait (Boost 1.81, epoll_reactor::start_op): one system call
// per keep-alive request, and one per wake-up of a listener. EdgeWait uses the flag instead:
// a wait completes at once when an edge came since the last EdgeWait completed, and is
// queued without a system call otherwise. So the caller must have read the descriptor until
// it was empty (a read that returned less than it asked for, or EAGAIN) since the last wait
// completed: input that arrives after that brings a new edge. Without such a read, use
// async_wait. A descriptor that entered epoll after its last read needs none (`fresh`):
// epoll_ctl ADD reports input already there as an edge.
//
// One wait at a time, owned by what it wakes (no allocation per wait). `resume(target,
// error)` runs on the loop like any completion handler: with no error when the descriptor
// may be readable, with operation_aborted when it was closed, released or cancelled first.
// `keep` (the owner, or nothing) lives until `resume` has returned.
class EdgeWait : boost::asio::detail::reactor_op {
  public:
    using Resume = void (*)(void* target, const boost::system::error_code& error);

    EdgeWait();
    EdgeWait(const EdgeWait&) = delete;
    EdgeWait& operator=(const EdgeWait&) = delete;

    // `descriptor` and `reactor_data`: those of an Asio socket of `io`, open and in epoll.
    // Not while outstanding().
    void start(boost::asio::execution_context& io, int descriptor,
               boost::asio::detail::reactor::per_descriptor_data& reactor_data, bool fresh,
               std::shared_ptr<void> keep, Resume resume, void* target);

    // The outstanding wait, if any, completes without calling its `resume` (its target is
    // gone, or no longer waits).
    void detach() {
        resume_ = nullptr;
        target_ = nullptr;
    }

    // Started and not completed yet (a cancelled wait is outstanding until its completion
    // with operation_aborted has run).
    bool outstanding() const { return outstanding_; }

    // What epoll last reported for the descriptor (EPOLLIN, EPOLLRDHUP, ...): Asio keeps it in
    // the descriptor's state until the next report. A state never reported on yet may hold
    // what was reported for a descriptor that had it before.
    static std::uint32_t last_reported(boost::asio::detail::reactor::per_descriptor_data data);

    // Adds `events` to what epoll watches on the descriptor (Asio's later changes keep them),
    // with an epoll_ctl MOD, which also re-arms its edges: what is there already is reported
    // as a new edge. False when the epoll_ctl failed.
    static bool watch_also(boost::asio::execution_context& io, int descriptor,
                           boost::asio::detail::reactor::per_descriptor_data data,
                           std::uint32_t events);

    // Asio's socket `Socket` with what EdgeWait needs of it.
    template <class Socket>
    class Exposing : public Socket {
      public:
        using Socket::Socket;
        int descriptor() { return this->impl_.get_implementation().socket_; }
        auto& reactor_data() { return this->impl_.get_implementation().reactor_data_; }
        auto& state() { return this->impl_.get_implementation().state_; }
    };

  private:
    static status perform(reactor_op* base);
    static void complete(void* owner, boost::asio::detail::operation* base,
                         const boost::system::error_code& ignored, std::size_t);

    boost::asio::execution_context* context_ = nullptr;
    boost::asio::detail::reactor* reactor_ = nullptr;  // context_'s
    std::shared_ptr<void> keep_;
    Resume resume_ = nullptr;
    void* target_ = nullptr;
    bool starting_fresh_ = false;
    bool outstanding_ = false;
};

}  // namespace prefork

#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace prefork::master {

// The signals the master handles, read from a signalfd on its event loop. They stay
// blocked for the master's whole life, so one that comes at any moment waits in the kernel
// until it is read: while a handler runs, and across an upgrade's exec (the mask and the
// pending signals cross it; the new image reads them once it has its own reader). None
// ever takes its default action meanwhile, and as PID 1, where the kernel drops a signal
// that has no handler, a blocked one is kept. Children get an empty mask back between
// fork and exec (restore_default_signals).
class SignalReader {
  public:
    // Blocks `signals` in this thread (the master has no other); throws std::system_error.
    SignalReader(boost::asio::io_context& io, const std::vector<int>& signals);
    SignalReader(const SignalReader&) = delete;
    SignalReader& operator=(const SignalReader&) = delete;

    // Calls `handler` with each signal as it comes, from the loop, from now on.
    void start(std::function<void(int)> handler);
    // Handles the signals pending now, at once (before an exec: what this image was told).
    void read_pending();

  private:
    void wait();

    boost::asio::io_context& io_;
    boost::asio::posix::stream_descriptor fd_;
    std::function<void(int)> handler_;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace prefork::master

#pragma once

#include <prefork/common/unique_fd.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace prefork::master {

// Connections left in the queue of a worker slot that no worker accepts on (its worker
// crashed, hangs, or was drained before its successor was ready; or the slot is no longer
// wanted): the master takes them and passes each to a worker that accepts, so that no
// connection waits on a queue nobody serves. Only the slots' sockets it is told to watch
// are watched, and a queue stays as it is while nobody could take its connections.
class StrayConnections {
  public:
    // Whether a worker can take a connection now; passes one accepted connection on, with
    // the master's listening socket it came to.
    using CanTake = std::function<bool()>;
    using Take = std::function<void(UniqueFd connection, int listener)>;

    StrayConnections(boost::asio::io_context& io, CanTake can_take, Take take)
        : io_(io), retry_timer_(io), can_take_(std::move(can_take)), take_(std::move(take)) {}

    // Watches exactly these listening sockets from now on (the others are let go), and
    // takes again from those it had paused on because no worker could take a connection.
    void watch(const std::vector<int>& listeners);
    std::uint64_t rescued() const { return rescued_; }
    // The count an upgraded master continues from.
    void continue_count(std::uint64_t rescued) { rescued_ = rescued; }

  private:
    struct Watch {
        explicit Watch(boost::asio::io_context& io) : listener(io) {}
        boost::asio::posix::stream_descriptor listener;  // a duplicate of the master's socket
        bool paused = false;
    };
    void wait(int fd, Watch& watch);
    void take_from(int fd, Watch& watch);
    void retry_later();

    boost::asio::io_context& io_;
    boost::asio::steady_timer retry_timer_;  // out of descriptors: the paused ones, later
    CanTake can_take_;
    Take take_;
    std::map<int, std::unique_ptr<Watch>> watches_;  // by the master's descriptor
    std::uint64_t rescued_ = 0;
};

}  // namespace prefork::master

#pragma once

#include <prefork/common/listen_address.hpp>
#include <prefork/common/unique_fd.hpp>

#include <string>
#include <vector>

namespace prefork::master {

// The master's listening sockets. They are bound before any worker starts and stay open
// while workers come and go, so the accept queue outlives every worker.
class ListenerSet {
  public:
    ListenerSet() = default;
    ListenerSet(ListenerSet&&) = default;
    ListenerSet& operator=(ListenerSet&&) = default;
    ~ListenerSet() { close_all(); }

    // Binds every address, or throws AddressError for the first that fails (and closes
    // what it had bound).
    void bind_all(const std::vector<ListenAddress>& addresses);

    // Closes every socket (the port is free once the workers' copies are closed too) and
    // removes the unix socket files this set created.
    void close_all();

    bool empty() const { return listeners_.empty(); }
    std::vector<int> fds() const;
    std::vector<std::string> names() const;

  private:
    struct Listener {
        ListenAddress address;
        UniqueFd fd;
    };
    std::vector<Listener> listeners_;
};

}  // namespace prefork::master

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

    // Moves to a new list of addresses (a reload): an address that stays keeps its socket,
    // never closed and rebound, so no connection is refused meanwhile; a new one is bound;
    // a removed one is closed here (its port is free once the workers that still hold it
    // have drained). Throws AddressError, changing nothing, when a new address cannot be bound.
    void update(const std::vector<ListenAddress>& addresses);

    // Takes the sockets systemd passed (socket activation) instead of binding any: they are
    // kept as they are across reloads, and never unlinked.
    void adopt(std::vector<std::pair<std::string, UniqueFd>> sockets);
    bool adopted() const { return adopted_; }

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
        bool owned = true;  // created here (a unix socket file is removed with it)
    };
    static void close(Listener& listener);

    std::vector<Listener> listeners_;
    bool adopted_ = false;
};

}  // namespace prefork::master

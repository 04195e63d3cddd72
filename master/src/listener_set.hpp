#pragma once

#include <prefork/common/listen_address.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/json/array.hpp>

#include <string>
#include <vector>

namespace prefork::master {

// The master's listening sockets. They are bound before any worker starts and stay open
// while workers come and go, so the accept queue outlives every worker.
//
// With per-slot queues (--reuseport, the default), each TCP address has one SO_REUSEPORT
// socket per worker slot, all created and kept by the master: a worker accepts on its
// slot's socket, and the worker that replaces it (a reload, a recycle, a crash) takes the
// same socket, queue and all, so nothing queued is dropped. Which slot a new connection
// goes to is the master's choice (steer): one of the slots a worker accepts on, at random,
// by a classic BPF program on the group. Unix sockets and sockets from systemd stay one
// queue shared by all workers.
class ListenerSet {
  public:
    ListenerSet() = default;
    ListenerSet(ListenerSet&&) = default;
    ListenerSet& operator=(ListenerSet&&) = default;
    ~ListenerSet() { close_all(); }

    // Per-slot queues for the TCP addresses bound from now on (set before bind_all).
    void set_reuseport(bool on) { reuseport_ = on; }
    bool reuseport() const { return reuseport_; }

    // Binds every address, or throws AddressError for the first that fails (and closes
    // what it had bound).
    void bind_all(const std::vector<ListenAddress>& addresses);

    // Moves to a new list of addresses (a reload): an address that stays keeps its sockets,
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
    std::vector<std::string> names() const;

    // The sockets a worker in `slot` accepts on, one per address, in order: the slot's own
    // (created on first use) where the address has per-slot queues, else the shared one.
    // A slot's socket that cannot be created is logged, and the slot shares slot 0's.
    std::vector<int> fds_for_slot(int slot);

    // From now on the kernel puts new connections in the queues of these slots only, spread
    // evenly at random. With none, it stays as it was (the queues keep what comes until a
    // worker is back).
    void steer(const std::vector<int>& slots);

    // Every socket, for an upgrade's exec to keep open.
    std::vector<int> all_fds() const;
    // The set as it crosses an upgrade's exec (its sockets by number), and the set made
    // again from that in the new image; restore throws upgrade::StateError.
    boost::json::array save() const;
    static ListenerSet restore(const boost::json::array& saved, bool reuseport, bool adopted);

    // The per-slot sockets of the slots not in `slots`: connections may still wait there
    // (queued before the slot's worker went), with no worker to accept them.
    std::vector<int> stray_fds(const std::vector<int>& slots) const;
    // Whether `fd`, one of this set's sockets, is a TLS listener's.
    bool serves_tls(int fd) const;

  private:
    struct Listener {
        ListenAddress address;
        // One socket; with per-slot queues, slot i's socket is fds[i].
        std::vector<UniqueFd> fds;
        bool owned = true;             // created here (a unix socket file is removed with it)
        bool per_slot = false;         // SO_REUSEPORT sockets, one per slot
        std::vector<int> steered_to;   // the slots steer() last sent new connections to
        bool steering_failed = false;  // said once; the kernel's own spread from then on
        bool slots_failed = false;     // a slot's socket could not be made: slot 0's from then on
    };
    Listener bind_one(const ListenAddress& address) const;
    static void close(Listener& listener);
    static void steer(Listener& listener, const std::vector<int>& slots);

    std::vector<Listener> listeners_;
    bool adopted_ = false;
    bool reuseport_ = false;
};

}  // namespace prefork::master

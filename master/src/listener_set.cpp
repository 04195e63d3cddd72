#include "listener_set.hpp"

#include "upgrade_state.hpp"

#include <prefork/common/log.hpp>

#include <linux/filter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace prefork::master {
namespace {

// A classic BPF program for a SO_REUSEPORT group: it returns the index, in the group, of
// the socket a new connection goes to (the order the sockets were bound in, which is the
// slot order: the master binds them so and closes none while the group lives). A random
// number modulo the slots' count picks one of them.
std::vector<sock_filter> steering_program(const std::vector<int>& slots) {
    std::vector<sock_filter> program;
    program.push_back(
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<__u32>(SKF_AD_OFF + SKF_AD_RANDOM)));
    program.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, static_cast<__u32>(slots.size())));
    bool in_order = true;
    for (std::size_t i = 0; i < slots.size(); ++i) in_order = in_order && slots[i] == int(i);
    if (in_order) {
        program.push_back(BPF_STMT(BPF_RET | BPF_A, 0));
        return program;
    }
    for (std::size_t i = 0; i + 1 < slots.size(); ++i) {
        program.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<__u32>(i), 0, 1));
        program.push_back(BPF_STMT(BPF_RET | BPF_K, static_cast<__u32>(slots[i])));
    }
    program.push_back(BPF_STMT(BPF_RET | BPF_K, static_cast<__u32>(slots.back())));
    return program;
}

}  // namespace

ListenerSet::Listener ListenerSet::bind_one(const ListenAddress& address) const {
    Listener listener{address, {}, true, false, {}};
    listener.per_slot = reuseport_ && address.kind == ListenAddress::Kind::tcp;
    listener.fds.push_back(bind_listener(address, listener.per_slot));
    log::info("listening on ", local_address(listener.fds[0].get()), " (", address.to_string(),
              listener.per_slot ? ", a queue per worker slot)" : ")");
    return listener;
}

void ListenerSet::bind_all(const std::vector<ListenAddress>& addresses) {
    close_all();
    try {
        for (const ListenAddress& address : addresses) listeners_.push_back(bind_one(address));
    } catch (...) {
        close_all();  // also removes the socket files bound so far
        throw;
    }
}

void ListenerSet::adopt(std::vector<std::pair<std::string, UniqueFd>> sockets) {
    close_all();
    adopted_ = true;
    for (auto& [name, fd] : sockets) {
        ListenAddress address;
        try {
            address = parse_listen_address(local_address(fd.get()));
        } catch (const AddressError&) {
            address.kind = ListenAddress::Kind::unix_socket;
            address.path = name;
        }
        log::info("listening on ", local_address(fd.get()), " (", name, ", from systemd)");
        Listener listener{address, {}, false, false, {}};
        listener.fds.push_back(std::move(fd));
        listeners_.push_back(std::move(listener));
    }
}

void ListenerSet::update(const std::vector<ListenAddress>& addresses) {
    if (adopted_) {
        log::info("the listeners come from systemd's socket activation: they stay as they are");
        return;
    }
    std::vector<Listener> next;
    try {
        for (const ListenAddress& address : addresses) {
            auto kept = std::find_if(listeners_.begin(), listeners_.end(), [&](const Listener& l) {
                return l.address == address && !l.fds.empty();
            });
            if (kept != listeners_.end()) {
                next.push_back(std::move(*kept));
                kept->fds.clear();  // the old entry keeps its address, to put it back
            } else {
                next.push_back(bind_one(address));
            }
        }
    } catch (...) {
        // Put back what was kept; close what was bound for this attempt.
        for (Listener& listener : next) {
            auto slot = std::find_if(listeners_.begin(), listeners_.end(), [&](const Listener& l) {
                return l.address == listener.address && l.fds.empty();
            });
            if (slot != listeners_.end()) {
                *slot = std::move(listener);
            } else {
                close(listener);
            }
        }
        throw;
    }
    for (Listener& removed : listeners_) {
        if (removed.fds.empty()) continue;
        log::info("closing listener ", removed.address.to_string(), " (no longer configured)");
        close(removed);
    }
    listeners_ = std::move(next);
}

void ListenerSet::close(Listener& listener) {
    if (listener.fds.empty()) return;
    listener.fds.clear();
    if (listener.owned && listener.address.kind == ListenAddress::Kind::unix_socket) {
        ::unlink(listener.address.path.c_str());
    }
}

void ListenerSet::close_all() {
    for (Listener& listener : listeners_) close(listener);
    listeners_.clear();
}

std::vector<std::string> ListenerSet::names() const {
    std::vector<std::string> names;
    for (const Listener& listener : listeners_) names.push_back(listener.address.to_string());
    return names;
}

std::vector<int> ListenerSet::fds_for_slot(int slot) {
    std::vector<int> fds;
    for (Listener& listener : listeners_) {
        if (listener.fds.empty()) continue;
        std::size_t wanted = static_cast<std::size_t>(slot);
        // Never a socket made for a later slot after one failed: a slot's socket must be the
        // group's socket of that index.
        while (listener.per_slot && !listener.slots_failed && listener.fds.size() <= wanted) {
            try {
                listener.fds.push_back(bind_sibling(listener.address, listener.fds[0].get()));
            } catch (const AddressError& error) {
                log::error(error.what(), "; worker slots from ", listener.fds.size(),
                           " on share slot 0's queue");
                listener.slots_failed = true;
            }
        }
        fds.push_back(
            listener.fds[wanted < listener.fds.size() && listener.per_slot ? wanted : 0].get());
    }
    return fds;
}

void ListenerSet::steer(const std::vector<int>& slots) {
    for (Listener& listener : listeners_) steer(listener, slots);
}

void ListenerSet::steer(Listener& listener, const std::vector<int>& slots) {
    if (!listener.per_slot || listener.fds.empty() || listener.steering_failed) return;
    std::vector<int> usable;
    for (int slot : slots) {
        if (slot >= 0 && static_cast<std::size_t>(slot) < listener.fds.size()) {
            usable.push_back(slot);
        }
    }
    std::sort(usable.begin(), usable.end());
    usable.erase(std::unique(usable.begin(), usable.end()), usable.end());
    if (usable.empty() || usable == listener.steered_to) return;
    std::vector<sock_filter> program = steering_program(usable);
    sock_fprog attached{static_cast<unsigned short>(program.size()), program.data()};
    if (::setsockopt(listener.fds[0].get(), SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &attached,
                     sizeof(attached)) != 0) {
        log::error("cannot steer the connections of ", listener.address.to_string(),
                   " (SO_ATTACH_REUSEPORT_CBPF): ", std::strerror(errno),
                   "; the kernel spreads them over every slot's queue");
        listener.steering_failed = true;
        return;
    }
    listener.steered_to = std::move(usable);
}

std::vector<int> ListenerSet::stray_fds(const std::vector<int>& slots) const {
    std::vector<int> fds;
    for (const Listener& listener : listeners_) {
        if (!listener.per_slot) continue;
        for (std::size_t i = 0; i < listener.fds.size(); ++i) {
            if (std::find(slots.begin(), slots.end(), int(i)) == slots.end()) {
                fds.push_back(listener.fds[i].get());
            }
        }
    }
    return fds;
}

bool ListenerSet::serves_tls(int fd) const {
    for (const Listener& listener : listeners_) {
        for (const UniqueFd& mine : listener.fds) {
            if (mine.get() == fd) return listener.address.tls;
        }
    }
    return false;
}

std::vector<int> ListenerSet::all_fds() const {
    std::vector<int> fds;
    for (const Listener& listener : listeners_) {
        for (const UniqueFd& fd : listener.fds) fds.push_back(fd.get());
    }
    return fds;
}

boost::json::array ListenerSet::save() const {
    boost::json::array saved;
    for (const Listener& listener : listeners_) {
        boost::json::array fds;
        for (const UniqueFd& fd : listener.fds) fds.emplace_back(fd.get());
        saved.push_back(
            boost::json::object{{"address", listener.address.to_string()},
                                {"unix_path", listener.address.path},
                                {"unix", listener.address.kind == ListenAddress::Kind::unix_socket},
                                {"fds", std::move(fds)},
                                {"owned", listener.owned},
                                {"per_slot", listener.per_slot},
                                {"steering_failed", listener.steering_failed},
                                {"slots_failed", listener.slots_failed}});
    }
    return saved;
}

ListenerSet ListenerSet::restore(const boost::json::array& saved, bool reuseport, bool adopted) {
    using namespace upgrade;
    ListenerSet set;
    set.reuseport_ = reuseport;
    set.adopted_ = adopted;
    for (const boost::json::value& entry : saved) {
        if (!entry.is_object()) throw StateError("a listener is not an object");
        const boost::json::object& object = entry.get_object();
        Listener listener;
        if (bool_at(object, "unix")) {
            // A socket from systemd may be named by what systemd called it.
            listener.address.kind = ListenAddress::Kind::unix_socket;
            listener.address.path = string_at(object, "unix_path");
        } else {
            try {
                listener.address = parse_listen_address(string_at(object, "address"));
            } catch (const AddressError& error) {
                throw StateError(std::string("a listener's address: ") + error.what());
            }
        }
        for (const boost::json::value& fd : array_at(object, "fds")) {
            listener.fds.push_back(take_descriptor(fd, "a listening socket"));
        }
        listener.owned = bool_at(object, "owned");
        listener.per_slot = bool_at(object, "per_slot");
        listener.steering_failed = bool_at(object, "steering_failed");
        listener.slots_failed = bool_at(object, "slots_failed");
        set.listeners_.push_back(std::move(listener));
    }
    return set;
}

}  // namespace prefork::master

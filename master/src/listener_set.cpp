#include "listener_set.hpp"

#include <prefork/common/log.hpp>

#include <unistd.h>

#include <algorithm>

namespace prefork::master {

void ListenerSet::bind_all(const std::vector<ListenAddress>& addresses) {
    close_all();
    try {
        for (const ListenAddress& address : addresses) {
            listeners_.push_back({address, bind_listener(address)});
        }
    } catch (...) {
        close_all();  // also removes the socket files bound so far
        throw;
    }
    for (const Listener& listener : listeners_) {
        log::info("listening on ", local_address(listener.fd.get()), " (",
                  listener.address.to_string(), ")");
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
        listeners_.push_back({address, std::move(fd), false});
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
            auto kept = std::find_if(listeners_.begin(), listeners_.end(),
                                     [&](const Listener& l) { return l.address == address; });
            if (kept != listeners_.end() && kept->fd) {
                next.push_back({address, std::move(kept->fd)});  // the old entry keeps its address
            } else {
                next.push_back({address, bind_listener(address)});
                log::info("listening on ", local_address(next.back().fd.get()), " (",
                          address.to_string(), ")");
            }
        }
    } catch (...) {
        // Put back what was kept; close what was bound for this attempt.
        for (Listener& listener : next) {
            auto slot = std::find_if(listeners_.begin(), listeners_.end(), [&](const Listener& l) {
                return l.address == listener.address;
            });
            if (slot != listeners_.end() && !slot->fd) {
                slot->fd = std::move(listener.fd);
            } else {
                close(listener);
            }
        }
        throw;
    }
    for (Listener& removed : listeners_) {
        if (!removed.fd) continue;
        log::info("closing listener ", removed.address.to_string(), " (no longer configured)");
        close(removed);
    }
    listeners_ = std::move(next);
}

void ListenerSet::close(Listener& listener) {
    if (!listener.fd) return;
    listener.fd.reset();
    if (listener.owned && listener.address.kind == ListenAddress::Kind::unix_socket) {
        ::unlink(listener.address.path.c_str());
    }
}

void ListenerSet::close_all() {
    for (Listener& listener : listeners_) close(listener);
    listeners_.clear();
}

std::vector<int> ListenerSet::fds() const {
    std::vector<int> fds;
    for (const Listener& listener : listeners_) fds.push_back(listener.fd.get());
    return fds;
}

std::vector<std::string> ListenerSet::names() const {
    std::vector<std::string> names;
    for (const Listener& listener : listeners_) names.push_back(listener.address.to_string());
    return names;
}

}  // namespace prefork::master

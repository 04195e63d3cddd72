#include "listener_set.hpp"

#include <prefork/common/log.hpp>

#include <unistd.h>

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

void ListenerSet::close_all() {
    for (Listener& listener : listeners_) {
        if (!listener.fd) continue;
        listener.fd.reset();
        if (listener.address.kind == ListenAddress::Kind::unix_socket) {
            ::unlink(listener.address.path.c_str());
        }
    }
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

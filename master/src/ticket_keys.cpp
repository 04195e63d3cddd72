#include "ticket_keys.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace prefork::master {
namespace {

constexpr std::size_t kKeySize = 80;  // name 16, HMAC key 32, AES key 32

void wipe(std::string& key) {
    volatile char* bytes = key.data();
    for (std::size_t i = 0; i < key.size(); ++i) bytes[i] = 0;
}

}  // namespace

void TicketKeys::rotate() {
    std::string key(kKeySize, '\0');
    for (std::size_t filled = 0; filled < key.size();) {
        ssize_t n = ::getrandom(key.data() + filled, key.size() - filled, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
        filled += static_cast<std::size_t>(n);
    }
    keys_.insert(keys_.begin(), std::move(key));
    while (keys_.size() > 2) {
        wipe(keys_.back());
        keys_.pop_back();
    }
}

control::TicketKeys TicketKeys::message(std::chrono::seconds lifetime) const {
    return control::TicketKeys{keys_, lifetime.count()};
}

void TicketKeys::restore(std::vector<std::string> keys) {
    for (auto& key : keys_) wipe(key);
    keys_.clear();
    for (auto& key : keys) {
        if (key.size() == kKeySize && keys_.size() < 2) keys_.push_back(std::move(key));
    }
}

TicketKeys::~TicketKeys() {
    for (auto& key : keys_) wipe(key);
}

}  // namespace prefork::master

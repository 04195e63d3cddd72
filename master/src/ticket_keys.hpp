#pragma once

#include <prefork/common/control_protocol.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace prefork::master {

// The session-ticket keys every worker encrypts and decrypts TLS session tickets with, so
// that a client resumes its session on any worker, and across reloads. Random, made here,
// kept in memory only (never on disk, never in the environment): they reach the workers
// over their control sockets. rotate() makes a new key for new tickets and keeps the one
// before for the tickets it issued, which a client keeps no longer than one rotation.
class TicketKeys {
  public:
    bool empty() const { return keys_.empty(); }
    void rotate();
    // What the workers are sent; `lifetime`: the rotation period.
    control::TicketKeys message(std::chrono::seconds lifetime) const;
    // For an upgrade's exec (the memfd of upgrade_state), and back.
    const std::vector<std::string>& keys() const { return keys_; }
    void restore(std::vector<std::string> keys);
    ~TicketKeys();

  private:
    std::vector<std::string> keys_;  // the newest first; at most two
};

}  // namespace prefork::master

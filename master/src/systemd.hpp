#pragma once

#include <prefork/common/unique_fd.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace prefork::master {

// Tells systemd how the service is doing (sd_notify's protocol: one datagram of
// NAME=VALUE lines to $NOTIFY_SOCKET). Without NOTIFY_SOCKET it does nothing.
class SystemdNotifier {
  public:
    // Takes NOTIFY_SOCKET from the environment and removes it, so workers never see it.
    static SystemdNotifier from_environment();
    // Notifies `path` (NOTIFY_SOCKET's value; empty: nothing), as an upgraded master does.
    static SystemdNotifier from_path(std::string path);
    const std::string& socket_path() const { return socket_path_; }

    // "READY=1", "RELOADING=1\nMONOTONIC_USEC=…", "STOPPING=1", "STATUS=…".
    void notify(std::string_view state) const;
    void ready(std::string_view status) const;
    void reloading() const;
    void stopping() const;

  private:
    std::string socket_path_;  // '@' first: an abstract socket
    UniqueFd socket_;
};

// A listening socket passed by systemd's socket activation.
struct ActivatedSocket {
    std::string name;  // from LISTEN_FDNAMES, or its address
    UniqueFd fd;
};

// The sockets systemd passed (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES), made close-on-exec
// at once; empty without socket activation. Removes the variables from the environment.
std::vector<ActivatedSocket> take_activated_sockets();

}  // namespace prefork::master

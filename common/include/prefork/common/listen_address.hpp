#pragma once

#include <prefork/common/unique_fd.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace prefork {

// One address to listen on, as written by a user: HOST:PORT, [V6]:PORT, unix:PATH, or a TCP
// address that serves TLS: tls:HOST:PORT, tls:[V6]:PORT.
struct ListenAddress {
    enum class Kind { tcp, unix_socket };

    Kind kind = Kind::tcp;
    bool tls = false;  // tcp only
    std::string host;  // tcp: an IPv4 literal, an IPv6 literal (without brackets) or a name
    std::uint16_t port = 0;
    std::string path;  // unix_socket: the socket file

    // The address as the user writes it (the name a listener is known by).
    std::string to_string() const;
    bool operator==(const ListenAddress&) const = default;
};

// A user's mistake in an address; what() is one sentence that names it.
class AddressError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// Throws AddressError for anything that is not one of the forms above.
ListenAddress parse_listen_address(std::string_view text);

// Whether a listener of this name (ListenAddress::to_string) serves TLS.
bool serves_tls(std::string_view listener_name);

// The accept queue length asked of the kernel (it caps it at net.core.somaxconn).
inline constexpr int kListenBacklog = 4096;

// Creates a listening socket: SOCK_CLOEXEC from birth, SO_REUSEADDR for TCP (and
// SO_REUSEPORT with `reuseport`, so that bind_sibling can add sockets), IPV6_V6ONLY for IPv6. For
// unix:PATH a stale socket file (nothing accepting on it) is replaced; a file that is not a socket,
// or a socket in use, is an error. Throws AddressError naming the address and the system's reason.
UniqueFd bind_listener(const ListenAddress& address, bool reuseport = false);

// Another SO_REUSEPORT listening socket on the address `listener` (bound with `reuseport`)
// is bound to: the kernel spreads new connections over the group, each socket with an
// accept queue of its own. Throws AddressError naming `address`.
UniqueFd bind_sibling(const ListenAddress& address, int listener);

// The address a listening socket is bound to (shows the port the kernel chose for port 0).
std::string local_address(int socket);

// "[" host "]", as an IPv6 address is written before a port.
std::string bracketed(std::string_view host);

}  // namespace prefork

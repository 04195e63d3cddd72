#include <prefork/common/listen_address.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

namespace prefork {
namespace {

constexpr std::string_view kUnixPrefix = "unix:";
constexpr std::string_view kTlsPrefix = "tls:";

std::uint16_t parse_port(std::string_view text, std::string_view whole) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value > 65535) {
        throw AddressError("invalid port in address \"" + std::string(whole) +
                           "\" (expected 0 to 65535)");
    }
    return static_cast<std::uint16_t>(value);
}

std::string system_reason(int error) {
    return std::strerror(error);
}

[[noreturn]] void fail(const ListenAddress& address, std::string_view what, int error) {
    throw AddressError("cannot " + std::string(what) + " " + address.to_string() + ": " +
                       system_reason(error));
}

// SO_REUSEADDR, and IPV6_V6ONLY for IPv6: what every TCP listener of prefork's is bound with.
void set_tcp_listener_options(int fd, int family) {
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
}

void set_reuseport(const ListenAddress& address, int fd) {
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        fail(address, "set SO_REUSEPORT on", errno);
    }
}

UniqueFd bind_tcp(const ListenAddress& address, bool reuseport) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port = std::to_string(address.port);
    int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        throw AddressError("cannot resolve " + address.to_string() + ": " + ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, &::freeaddrinfo);

    UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail(address, "create a socket for", errno);
    set_tcp_listener_options(fd.get(), found->ai_family);
    if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0) fail(address, "bind", errno);
    // Only now: bound without it, a port another server holds (even with SO_REUSEPORT, as
    // another prefork would) is refused as busy instead of shared with it.
    if (reuseport) set_reuseport(address, fd.get());
    if (::listen(fd.get(), kListenBacklog) != 0) fail(address, "listen on", errno);
    return fd;
}

sockaddr_un unix_sockaddr(const std::string& path) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    return sun;
}

// A socket file that nothing accepts on is left over from a server that died: remove it.
// Anything else at that path is the user's, and stays.
void remove_stale_socket(const ListenAddress& address) {
    struct stat st {};
    if (::lstat(address.path.c_str(), &st) != 0) return;
    if (!S_ISSOCK(st.st_mode)) fail(address, "bind", EEXIST);
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) fail(address, "create a socket for", errno);
    sockaddr_un sun = unix_sockaddr(address.path);
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0) {
        fail(address, "bind", EADDRINUSE);
    }
    if (errno != ECONNREFUSED) fail(address, "bind", errno);
    ::unlink(address.path.c_str());
}

UniqueFd bind_unix(const ListenAddress& address) {
    remove_stale_socket(address);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail(address, "create a socket for", errno);
    sockaddr_un sun = unix_sockaddr(address.path);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
        fail(address, "bind", errno);
    }
    if (::listen(fd.get(), kListenBacklog) != 0) fail(address, "listen on", errno);
    return fd;
}

}  // namespace

std::string ListenAddress::to_string() const {
    if (kind == Kind::unix_socket) return std::string(kUnixPrefix) + path;
    std::string prefix = tls ? std::string(kTlsPrefix) : std::string();
    if (host.find(':') != std::string::npos) {
        return prefix + bracketed(host) + ":" + std::to_string(port);
    }
    return prefix + host + ":" + std::to_string(port);
}

bool serves_tls(std::string_view listener_name) {
    return listener_name.starts_with(kTlsPrefix);
}

ListenAddress parse_listen_address(std::string_view text) {
    if (text.starts_with(kTlsPrefix)) {
        std::string_view rest = text.substr(kTlsPrefix.size());
        if (rest.starts_with(kUnixPrefix) || rest.starts_with(kTlsPrefix)) {
            throw AddressError("invalid address \"" + std::string(text) +
                               "\" (TLS is served on tls:HOST:PORT or tls:[V6]:PORT)");
        }
        ListenAddress address = parse_listen_address(rest);
        address.tls = true;
        return address;
    }
    ListenAddress address;
    if (text.starts_with(kUnixPrefix)) {
        address.kind = ListenAddress::Kind::unix_socket;
        address.path = std::string(text.substr(kUnixPrefix.size()));
        if (address.path.empty()) throw AddressError("empty path in address \"unix:\"");
        if (address.path.size() >= sizeof(sockaddr_un::sun_path)) {
            throw AddressError("unix socket path too long in \"" + std::string(text) +
                               "\" (at most " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                               " bytes)");
        }
        return address;
    }
    if (text.starts_with("[")) {
        auto close = text.find("]:");
        if (close == std::string_view::npos) {
            throw AddressError("invalid address \"" + std::string(text) +
                               "\" (expected [IPV6]:PORT)");
        }
        address.host = std::string(text.substr(1, close - 1));
        in6_addr probe{};
        if (::inet_pton(AF_INET6, address.host.c_str(), &probe) != 1) {
            throw AddressError("invalid IPv6 address in \"" + std::string(text) + "\"");
        }
        address.port = parse_port(text.substr(close + 2), text);
        return address;
    }
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        throw AddressError("invalid address \"" + std::string(text) +
                           "\" (expected HOST:PORT, [IPV6]:PORT or unix:PATH)");
    }
    address.host = std::string(text.substr(0, colon));
    if (address.host.find(':') != std::string::npos) {
        throw AddressError("invalid address \"" + std::string(text) +
                           "\" (write an IPv6 address in brackets: [IPV6]:PORT)");
    }
    address.port = parse_port(text.substr(colon + 1), text);
    return address;
}

UniqueFd bind_listener(const ListenAddress& address, bool reuseport) {
    return address.kind == ListenAddress::Kind::unix_socket ? bind_unix(address)
                                                            : bind_tcp(address, reuseport);
}

UniqueFd bind_sibling(const ListenAddress& address, int listener) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    if (::getsockname(listener, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
        fail(address, "find the address of", errno);
    }
    UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) fail(address, "create a socket for", errno);
    set_tcp_listener_options(fd.get(), storage.ss_family);
    set_reuseport(address, fd.get());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
        fail(address, "bind another SO_REUSEPORT socket to", errno);
    }
    if (::listen(fd.get(), kListenBacklog) != 0) fail(address, "listen on", errno);
    return fd;
}

std::string bracketed(std::string_view host) {
    std::string text;  // appended, not "[" + host: GCC 12 -O3 warns on that falsely (PR 105329)
    text.reserve(host.size() + 2);
    text += '[';
    text += host;
    text += ']';
    return text;
}

std::string local_address(int socket) {
    sockaddr_storage storage{};
    socklen_t length = sizeof(storage);
    if (::getsockname(socket, reinterpret_cast<sockaddr*>(&storage), &length) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = {};
    switch (storage.ss_family) {
        case AF_INET: {
            auto* in = reinterpret_cast<sockaddr_in*>(&storage);
            ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
        }
        case AF_INET6: {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&storage);
            ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            return bracketed(host) + ":" + std::to_string(ntohs(in6->sin6_port));
        }
        case AF_UNIX:
            return std::string(kUnixPrefix) + reinterpret_cast<sockaddr_un*>(&storage)->sun_path;
    }
    return "?";
}

}  // namespace prefork

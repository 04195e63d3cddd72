#pragma once

#include <prefork/common/control_protocol.hpp>

#include <boost/asio/ssl/context.hpp>

#include <array>
#include <chrono>
#include <vector>

typedef struct ssl_st SSL;

namespace prefork {

// A worker's TLS server context: the credentials the master read (the worker never opens a
// certificate or key file), and the master's session-ticket keys, so that a session begun on
// any worker resumes on every other, and across reloads. One per worker: a reload's new
// certificate comes with the new generation's workers.
class TlsContext {
  public:
    // Throws tls::CredentialsError.
    explicit TlsContext(const control::TlsCredentials& credentials);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    // The master's keys, the newest first: it encrypts the new tickets, the others still
    // decrypt (and the ticket is renewed). `lifetime`: how long a client may keep a ticket.
    void set_ticket_keys(const std::vector<std::string>& keys, std::chrono::seconds lifetime);

    // A server session over the connected socket `fd` (which the caller keeps owning); null
    // when OpenSSL cannot make one.
    SSL* new_session(int fd);

  private:
    struct TicketKey {
        std::array<unsigned char, 16> name;
        std::array<unsigned char, 32> hmac_key;
        std::array<unsigned char, 32> aes_key;
    };
    friend struct TicketCallback;

    boost::asio::ssl::context context_;
    std::vector<TicketKey> ticket_keys_;
};

}  // namespace prefork

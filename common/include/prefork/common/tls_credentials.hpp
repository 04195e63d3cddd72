#pragma once

// What master and worker share of TLS: reading and checking a certificate chain and its key
// (the master, at start and on each reload), and a server context set up with them (the
// master to check, each worker to serve).

#include <prefork/common/control_protocol.hpp>

#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace prefork::tls {

// TLS 1.2's ciphers when none are given: forward secrecy and AEAD only (TLS 1.3's suites are
// OpenSSL's own, which are all of that kind).
inline constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// A user's mistake in a certificate, a key or a cipher list; what() is one sentence.
class CredentialsError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// The certificate a listener serves (the first of the chain), as /status and /metrics show it.
struct Certificate {
    std::string subject;         // "CN=localhost"
    std::string serial;          // hexadecimal
    std::int64_t not_after = 0;  // seconds since the epoch
};

struct Credentials {
    control::TlsCredentials pem;  // what the workers are sent
    Certificate certificate;
};

// Reads the chain and the key, and checks that they parse, that the key is the certificate's
// and that the certificate is valid now, and that OpenSSL takes the cipher list. Throws
// CredentialsError naming the file and what is wrong.
Credentials load_credentials(const std::string& certificate_file, const std::string& key_file,
                             const std::string& ciphers);

// A server context with these credentials: TLS 1.2 and 1.3, the cipher list, ALPN
// http/1.1, no compression, no renegotiation, no session cache (sessions resume by ticket,
// on any worker: the ticket keys are the master's). Throws CredentialsError.
void configure_server(boost::asio::ssl::context& context, const control::TlsCredentials& pem);

}  // namespace prefork::tls

#include "tls_context.hpp"

#include <prefork/common/log.hpp>
#include <prefork/common/tls_credentials.hpp>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <cstring>

namespace prefork {
namespace {

// Where an SSL_CTX keeps its TlsContext: ex_data of our own (Asio's ssl::context owns the
// app data, its verify callback, and deletes it with the context).
int context_index() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

}  // namespace

// OpenSSL's session-ticket callback (SSL_CTX_set_tlsext_ticket_key_evp_cb): AES-256-CBC and
// HMAC-SHA256 under the master's keys, found by their name.
struct TicketCallback {
    static int on_ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                         EVP_MAC_CTX* mac, int encrypt) {
        auto* self =
            static_cast<TlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
        if (self == nullptr || self->ticket_keys_.empty()) return 0;  // no ticket
        const TlsContext::TicketKey* key = nullptr;
        bool newest = true;
        if (encrypt) {
            key = &self->ticket_keys_.front();
            if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
            std::memcpy(name, key->name.data(), key->name.size());
        } else {
            for (const auto& candidate : self->ticket_keys_) {
                if (std::memcmp(name, candidate.name.data(), candidate.name.size()) == 0) {
                    key = &candidate;
                    break;
                }
                newest = false;
            }
            if (key == nullptr) return 0;  // a key rotated out: a full handshake
        }
        static char kDigest[] = "SHA256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                              const_cast<unsigned char*>(key->hmac_key.data()),
                                              key->hmac_key.size()),
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, kDigest, 0),
            OSSL_PARAM_construct_end()};
        if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
        int ok =
            encrypt
                ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv)
                : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv);
        if (ok != 1) return -1;
        // 2: renewed. Always in TLS 1.3, whose clients use each ticket once (RFC 8446 C.4):
        // without a new ticket on every resumed connection, they resume only every other
        // one. In TLS 1.2 a ticket is reused, and renewed once an older key decrypted it.
        if (encrypt) return 1;
        return newest && SSL_version(ssl) != TLS1_3_VERSION ? 1 : 2;
    }
};

TlsContext::TlsContext(const control::TlsCredentials& credentials)
    : context_(boost::asio::ssl::context::tls_server) {
    tls::configure_server(context_, credentials);
    // A record in one read(), not its 5-byte header and then the rest: one system call per
    // request saved. What is read ahead stays in the session (TlsStream::holds_input).
    SSL_CTX_set_read_ahead(context_.native_handle(), 1);
    SSL_CTX_set_ex_data(context_.native_handle(), context_index(), this);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(context_.native_handle(), &TicketCallback::on_ticket);
}

TlsContext::~TlsContext() {
    SSL_CTX_set_ex_data(context_.native_handle(), context_index(), nullptr);
    for (auto& key : ticket_keys_) OPENSSL_cleanse(&key, sizeof key);
}

void TlsContext::set_ticket_keys(const std::vector<std::string>& keys,
                                 std::chrono::seconds lifetime) {
    std::vector<TicketKey> next;
    for (const std::string& bytes : keys) {
        TicketKey key;
        if (bytes.size() != key.name.size() + key.hmac_key.size() + key.aes_key.size()) continue;
        std::memcpy(key.name.data(), bytes.data(), key.name.size());
        std::memcpy(key.hmac_key.data(), bytes.data() + key.name.size(), key.hmac_key.size());
        std::memcpy(key.aes_key.data(), bytes.data() + key.name.size() + key.hmac_key.size(),
                    key.aes_key.size());
        next.push_back(key);
    }
    for (auto& old : ticket_keys_) OPENSSL_cleanse(&old, sizeof old);
    ticket_keys_ = std::move(next);
    if (lifetime.count() > 0) {
        SSL_CTX_set_timeout(context_.native_handle(), static_cast<long>(lifetime.count()));
    }
}

SSL* TlsContext::new_session(int fd) {
    ERR_clear_error();
    SSL* ssl = SSL_new(context_.native_handle());
    if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
        const char* reason = ERR_reason_error_string(ERR_get_error());
        log::error("cannot start a TLS session: ", reason != nullptr ? reason : "out of memory");
        SSL_free(ssl);
        return nullptr;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

}  // namespace prefork

#include <prefork/common/tls_credentials.hpp>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

namespace prefork::tls {
namespace {

// The reason of OpenSSL's last error, its queue emptied.
std::string openssl_reason() {
    unsigned long code = ERR_get_error();
    unsigned long last = code;
    while (unsigned long next = ERR_get_error()) last = next;
    if (code == 0) return "unknown error";
    const char* reason = ERR_reason_error_string(last);
    return reason != nullptr ? reason : "error " + std::to_string(last);
}

std::string read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw CredentialsError("cannot read the TLS " + std::string(what) + " " + path + ": " +
                               std::strerror(errno));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().empty()) {
        throw CredentialsError("the TLS " + std::string(what) + " " + path + " is empty");
    }
    return text.str();
}

std::string subject_of(X509* certificate) {
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
    X509_NAME_print_ex(out.get(), X509_get_subject_name(certificate), 0,
                       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    long size = BIO_get_mem_data(out.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string serial_of(X509* certificate) {
    std::unique_ptr<BIGNUM, decltype(&BN_free)> number(
        ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr), &BN_free);
    if (!number) return "";
    char* hex = BN_bn2hex(number.get());
    std::string serial = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
    return serial;
}

std::int64_t seconds_of(const ASN1_TIME* time) {
    std::tm when{};
    if (ASN1_TIME_to_tm(time, &when) != 1) return 0;
    return static_cast<std::int64_t>(::timegm(&when));
}

std::string date_of(std::int64_t seconds) {
    std::time_t t = static_cast<std::time_t>(seconds);
    std::tm when{};
    ::gmtime_r(&t, &when);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &when);
    return text;
}

// ALPN: http/1.1 when the client offers it; a client that offers only other protocols is
// served without ALPN (its choice to go on or not).
int select_http11(SSL*, const unsigned char** out, unsigned char* out_length,
                  const unsigned char* offered, unsigned int length, void*) {
    static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
    for (unsigned int at = 0; at < length;) {
        unsigned int size = offered[at];
        if (at + 1 + size > length) break;
        if (size == sizeof kHttp11 && std::memcmp(offered + at + 1, kHttp11, size) == 0) {
            *out = offered + at + 1;
            *out_length = static_cast<unsigned char>(size);
            return SSL_TLSEXT_ERR_OK;
        }
        at += 1 + size;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

void configure_server(boost::asio::ssl::context& context, const control::TlsCredentials& pem) {
    SSL_CTX* ctx = context.native_handle();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Partial writes: a large response goes out record by record, as the socket takes it.
    // Buffers released: an idle connection holds none of OpenSSL's. No chain built: the
    // chain sent is the file's, not one looked up in a certificate store at each handshake.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    static constexpr unsigned char kContext[] = "prefork";
    SSL_CTX_set_session_id_context(ctx, kContext, sizeof kContext - 1);
    SSL_CTX_set_alpn_select_cb(ctx, &select_http11, nullptr);
    const std::string& ciphers = pem.ciphers.empty() ? std::string(kDefaultCiphers) : pem.ciphers;
    if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
        throw CredentialsError("OpenSSL takes none of the TLS ciphers \"" + ciphers +
                               "\": " + openssl_reason());
    }
    boost::system::error_code ec;
    context.use_certificate_chain(
        boost::asio::buffer(pem.certificate_chain.data(), pem.certificate_chain.size()), ec);
    if (ec) throw CredentialsError("the TLS certificate chain does not parse: " + ec.message());
    context.use_private_key(boost::asio::buffer(pem.private_key.data(), pem.private_key.size()),
                            boost::asio::ssl::context::pem, ec);
    if (ec) throw CredentialsError("the TLS key does not parse: " + ec.message());
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        throw CredentialsError("the TLS key is not the certificate's");
    }
}

Credentials load_credentials(const std::string& certificate_file, const std::string& key_file,
                             const std::string& ciphers) {
    Credentials loaded;
    loaded.pem.certificate_chain = read_file(certificate_file, "certificate");
    loaded.pem.private_key = read_file(key_file, "key");
    loaded.pem.ciphers = ciphers;

    ERR_clear_error();
    std::unique_ptr<BIO, decltype(&BIO_free)> in(
        BIO_new_mem_buf(loaded.pem.certificate_chain.data(),
                        static_cast<int>(loaded.pem.certificate_chain.size())),
        &BIO_free);
    std::unique_ptr<X509, decltype(&X509_free)> leaf(
        PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr), &X509_free);
    if (!leaf) {
        throw CredentialsError("the TLS certificate " + certificate_file +
                               " is not a PEM certificate: " + openssl_reason());
    }
    std::unique_ptr<BIO, decltype(&BIO_free)> key_in(
        BIO_new_mem_buf(loaded.pem.private_key.data(),
                        static_cast<int>(loaded.pem.private_key.size())),
        &BIO_free);
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        PEM_read_bio_PrivateKey(key_in.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
    if (!key) {
        throw CredentialsError(
            "the TLS key " + key_file +
            " is not a PEM private key (or needs a passphrase): " + openssl_reason());
    }
    if (X509_check_private_key(leaf.get(), key.get()) != 1) {
        ERR_clear_error();
        throw CredentialsError("the TLS key " + key_file + " is not the key of the certificate " +
                               certificate_file);
    }
    loaded.certificate.subject = subject_of(leaf.get());
    loaded.certificate.serial = serial_of(leaf.get());
    loaded.certificate.not_after = seconds_of(X509_get0_notAfter(leaf.get()));
    if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) <= 0) {
        throw CredentialsError("the TLS certificate " + certificate_file + " (" +
                               loaded.certificate.subject + ") expired on " +
                               date_of(loaded.certificate.not_after));
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf.get())) >= 0) {
        throw CredentialsError("the TLS certificate " + certificate_file + " (" +
                               loaded.certificate.subject + ") is not valid before " +
                               date_of(seconds_of(X509_get0_notBefore(leaf.get()))));
    }
    // The whole chain and the cipher list, as a worker will take them.
    boost::asio::ssl::context probe(boost::asio::ssl::context::tls_server);
    try {
        configure_server(probe, loaded.pem);
    } catch (const CredentialsError& error) {
        throw CredentialsError(std::string(error.what()) + " (" + certificate_file + ", " +
                               key_file + ")");
    }
    return loaded;
}

}  // namespace prefork::tls

#include "tls_stream.hpp"

#include <boost/asio/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstring>

namespace prefork {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Buffers smaller than this together go out as one record and one write, not one each.
constexpr std::size_t kGatherLimit = 16 * 1024;

std::string reason_of(unsigned long code) {
    if (code == 0) return "the connection closed";
    const char* reason = ERR_reason_error_string(code);
    return reason != nullptr ? reason : "TLS error " + std::to_string(code);
}

}  // namespace

TlsStream::TlsStream(SSL* ssl) : ssl_(ssl) {
    // The socket BIO (SSL_set_fd's, for both directions) tells each read's outcome.
    BIO* bio = SSL_get_rbio(ssl_);
    BIO_set_callback_arg(bio, reinterpret_cast<char*>(this));
    BIO_set_callback_ex(bio, &TlsStream::note_socket_io);
}

long TlsStream::note_socket_io(BIO* bio, int operation, const char*, std::size_t length, int, long,
                               int result, std::size_t* done) {
    if (operation == (BIO_CB_READ | BIO_CB_RETURN)) {
        auto* stream = reinterpret_cast<TlsStream*>(BIO_get_callback_arg(bio));
        stream->socket_read_short_ = result > 0 && done != nullptr && *done < length;
    }
    return result;
}

TlsStream::~TlsStream() {
    SSL_free(ssl_);
}

error_code TlsStream::failure(int result) {
    int code = SSL_get_error(ssl_, result);
    wants_write_ = code == SSL_ERROR_WANT_WRITE;
    switch (code) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return asio::error::would_block;
        case SSL_ERROR_ZERO_RETURN:
            return asio::error::eof;
        case SSL_ERROR_SYSCALL:
            broken_ = true;
            if (errno == 0 || ERR_peek_error() == 0) {
                return errno != 0 ? error_code(errno, boost::system::system_category())
                                  : error_code(asio::error::eof);
            }
            return asio::error::connection_reset;
        default:
            broken_ = true;
            return asio::error::connection_reset;
    }
}

void TlsStream::handshake(error_code& ec, std::string& reason) {
    ERR_clear_error();
    errno = 0;
    int result = SSL_do_handshake(ssl_);
    if (result == 1) {
        established_ = true;
        wants_write_ = false;
        ec = {};
        return;
    }
    unsigned long code = ERR_peek_last_error();
    ec = failure(result);
    if (ec == asio::error::would_block) return;
    if (ec == asio::error::eof && code == 0) {
        reason = "the client closed the connection";
    } else if (code == 0 && errno != 0) {
        reason = std::strerror(errno);
    } else {
        reason = reason_of(code);
    }
    ERR_clear_error();
}

bool TlsStream::resumed() const {
    return SSL_session_reused(ssl_) == 1;
}

std::size_t TlsStream::read(char* space, std::size_t room, error_code& ec) {
    ERR_clear_error();
    errno = 0;
    std::size_t n = 0;
    if (SSL_read_ex(ssl_, space, room, &n) == 1) {
        wants_write_ = read_found_socket_empty_ = false;
        ec = {};
        return n;
    }
    read_found_socket_empty_ = SSL_get_error(ssl_, 0) == SSL_ERROR_WANT_READ;
    ec = failure(0);
    ERR_clear_error();
    return 0;
}

std::size_t TlsStream::write(std::span<const asio::const_buffer> buffers, error_code& ec) {
    ec = {};
    std::size_t total = 0, count = 0;
    for (const auto& buffer : buffers) {
        if (buffer.size() == 0) continue;
        total += buffer.size();
        ++count;
    }
    if (total == 0) return 0;
    if (count > 1 && total <= kGatherLimit) {
        // On the stack: a connection keeps no buffer between writes (an idle one holds none,
        // as OpenSSL's own are released). A retry gathers the same bytes again.
        char scratch[kGatherLimit];
        std::size_t at = 0;
        for (const auto& buffer : buffers) {
            if (buffer.size() == 0) continue;
            std::memcpy(scratch + at, buffer.data(), buffer.size());
            at += buffer.size();
        }
        asio::const_buffer gathered(scratch, at);
        return write(std::span<const asio::const_buffer>(&gathered, 1), ec);
    }
    // Record after record while the socket takes them (partial writes: each call writes one).
    std::size_t written = 0;
    for (const auto& buffer : buffers) {
        const char* data = static_cast<const char*>(buffer.data());
        for (std::size_t done = 0; done < buffer.size();) {
            ERR_clear_error();
            errno = 0;
            std::size_t n = 0;
            if (SSL_write_ex(ssl_, data + done, buffer.size() - done, &n) != 1) {
                error_code failed = failure(0);
                ERR_clear_error();
                if (written == 0) ec = failed;  // else the next call finds it again
                return written;
            }
            wants_write_ = false;
            done += n;
            written += n;
        }
    }
    return written;
}

std::size_t TlsStream::pending() const {
    int decrypted = SSL_pending(ssl_);
    if (decrypted > 0) return static_cast<std::size_t>(decrypted);
    return SSL_has_pending(ssl_) == 1 ? 1 : 0;
}

bool TlsStream::holds_input() const {
    if (SSL_pending(ssl_) > 0) return true;
    return !read_found_socket_empty_ && SSL_has_pending(ssl_) == 1;
}

void TlsStream::shutdown() {
    if (shut_down_ || broken_ || !established_) return;
    shut_down_ = true;
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
}

}  // namespace prefork

#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

#include <span>
#include <string>

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace prefork {

// One connection's TLS session, over its non-blocking socket (OpenSSL reads and writes the
// descriptor itself). Every call returns at once: asio::error::would_block means "wait for
// the socket" (readable, or writable when wants_write()), as a plain socket's EAGAIN does.
class TlsStream {
  public:
    explicit TlsStream(SSL* ssl);  // owns it
    TlsStream(const TlsStream&) = delete;
    TlsStream& operator=(const TlsStream&) = delete;
    ~TlsStream();

    // One step of the server's handshake: done (ec clear), would_block (wait, see
    // wants_write), or the handshake failed (ec set, `reason` says why).
    void handshake(boost::system::error_code& ec, std::string& reason);
    bool established() const { return established_; }
    // Whether the client resumed a session (by ticket) rather than starting one.
    bool resumed() const;

    // Like recv: eof when the client closed (close_notify, or its FIN).
    std::size_t read(char* space, std::size_t room, boost::system::error_code& ec);
    // Like sendmsg: what was written of `buffers`; a write that found the socket full is
    // called again with the same bytes (OpenSSL may hold part of a record meanwhile).
    std::size_t write(std::span<const boost::asio::const_buffer> buffers,
                      boost::system::error_code& ec);
    // Bytes OpenSSL holds that the socket no longer shows: decrypted ones, or at least 1 for
    // records read ahead (whole or in part) and not yet decrypted.
    std::size_t pending() const;
    // Whether a read would find input without the socket: OpenSSL holds decrypted bytes, or
    // read-ahead bytes that it has not tried to complete from the socket yet (once a read
    // found the socket empty, what it holds is part of a record that needs more from it).
    bool holds_input() const;
    // The last read from the socket (OpenSSL's, of a record or more) returned less than it
    // asked for: the socket was emptied then (but for a FIN or urgent data, as for recv).
    bool socket_read_short() const { return socket_read_short_; }
    // The last call would block until the socket can take more (else: until it has input).
    bool wants_write() const { return wants_write_; }
    // Sends close_notify, once, if the session is still sound (best effort, never blocks).
    void shutdown();

  private:
    static long note_socket_io(BIO* bio, int operation, const char* data, std::size_t length, int,
                               long, int result, std::size_t* done);
    // Maps an OpenSSL failure to an error code; would_block when it only has to wait.
    boost::system::error_code failure(int result);

    SSL* ssl_;
    bool established_ = false;
    bool wants_write_ = false;
    bool read_found_socket_empty_ = false;  // the last read ended in WANT_READ
    bool socket_read_short_ = false;
    bool broken_ = false;  // a fatal error or a reset: no close_notify
    bool shut_down_ = false;
};

}  // namespace prefork

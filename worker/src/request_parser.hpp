#pragma once

#include <prefork/request.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prefork {

// What one request may hold at most; beyond, it is refused.
struct ParserLimits {
    std::size_t header_limit = 16 * 1024;        // request line + fields: 431 (414: the line)
    std::uint64_t body_limit = 8 * 1024 * 1024;  // body bytes, however framed: 413
    std::size_t chunk_line_limit = 4096;         // a chunk-size line with its extensions: 400
    std::size_t trailer_limit = 16 * 1024;       // the trailer fields of a chunked body: 431
    int max_empty_lines = 8;                     // CRLFs before a request line: 400 beyond
};

// A strict, incremental HTTP/1.1 request parser (RFC 9110, RFC 9112). It accepts only
// what the RFCs say a server must or should accept, and refuses the rest with the status
// to answer; every refusal means the connection closes after the answer, because the
// bytes after a refused request cannot be trusted to start a request.
//
// The head is parsed from contiguous bytes (the caller's read buffer, bounded by the
// header limit); the body is decoded piece by piece, from whatever the caller has read.
// After a request is complete, reset() prepares for the next one on the connection; the
// bytes the body did not consume are the start of that next request (pipelining).
//
// What is accepted, in short: a request line `token SP target SP HTTP/1.1` or `HTTP/1.0`
// (any other version, 1.2 included, is answered 505), empty lines before it ignored up to
// max_empty_lines; a target in origin-form, absolute-form
// (http or https; routed by its path, its authority replaces Host) or asterisk-form for
// OPTIONS; field names that are tokens, values without CTLs; exactly one valid Host on
// HTTP/1.1; framing by one Content-Length (digits only) or by Transfer-Encoding ending in
// chunked (HTTP/1.1 only, never with Content-Length). Bytes above 0x7F are allowed in
// field values (obs-text) but not in the target, which RFC 3986 says is ASCII.
class RequestParser {
  public:
    enum class Result { need_more, done, refused };

    explicit RequestParser(const ParserLimits& limits = {});

    // Forgets the request parsed so far, ready for the next one.
    void reset();

    // Parses the request line and fields at the start of `data`: all of this request's
    // bytes received so far. need_more: no complete head yet (call again with more; a
    // head longer than the header limit is refused). done: `consumed` is the head's
    // length (with the empty lines before it), message() and the framing are set.
    // refused: status() and reason() say why.
    Result parse_head(std::string_view data, std::size_t& consumed);

    // After parse_head's done, while has_body(): decodes the body bytes at the start of
    // `data`, appending them to `body`; `consumed` is how many bytes of `data` it used.
    // need_more: all of `data` was used and the body goes on. done: the body is complete
    // (the bytes after `consumed` belong to the next request). refused: as above.
    Result parse_body(std::string_view data, std::size_t& consumed, std::string& body);

    // The request as parsed: method, target (origin-form, or "*"), version, fields.
    Request::Message& message() { return message_; }
    // The same, moved out (the parser keeps nothing of it).
    Request::Message take_message() {
        message_taken_ = true;
        return std::move(message_);
    }
    bool has_body() const { return chunked_ || content_length_ > 0; }
    bool chunked() const { return chunked_; }
    std::uint64_t content_length() const { return content_length_; }
    bool keep_alive() const { return keep_alive_; }
    // HTTP/1.1 with Expect: 100-continue: the client waits for an interim answer.
    bool expects_continue() const { return expects_continue_; }
    // Bytes of body decoded so far.
    std::uint64_t body_received() const { return body_received_; }

    // After refused: 400, 413, 414, 431, 501 or 505, and the rule the request broke.
    int status() const { return status_; }
    std::string_view reason() const { return reason_; }

  private:
    enum class ChunkState { size_line, data, data_end, trailer, done };

    Result refuse(int status, std::string_view reason);
    Result parse_request_line(std::string_view line);
    Result parse_target(std::string_view target);
    Result parse_field(std::string_view line);
    Result check_framing();
    Result parse_chunked(std::string_view data, std::size_t& consumed, std::string& body);
    Result parse_chunk_size_line(std::string_view line);
    Result parse_trailer_line(std::string_view line);

    ParserLimits limits_;
    Request::Message message_;
    bool message_taken_ = false;  // moved out: nothing to clear
    std::size_t scanned_ = 0;     // bytes of the head already searched for line ends
    std::size_t head_start_ = 0;  // after the empty lines before the request line
    std::size_t line_start_ = 0;  // of the line being received
    int empty_lines_ = 0;
    bool have_request_line_ = false;
    std::string authority_;  // of an absolute-form target
    bool absolute_form_ = false;
    int host_count_ = 0;
    int content_length_count_ = 0;
    bool has_transfer_encoding_ = false;
    std::string transfer_encoding_;  // every Transfer-Encoding value, comma-joined
    bool chunked_ = false;
    std::uint64_t content_length_ = 0;
    bool content_length_overflow_ = false;
    bool keep_alive_ = true;
    bool connection_close_ = false;
    bool connection_keep_alive_ = false;
    bool expects_continue_ = false;
    std::uint64_t body_received_ = 0;

    ChunkState chunk_state_ = ChunkState::size_line;
    std::string chunk_line_;  // a chunk-size or trailer line split across reads
    std::uint64_t chunk_left_ = 0;
    std::size_t trailer_bytes_ = 0;

    int status_ = 0;
    std::string_view reason_;
};

}  // namespace prefork

#pragma once

#include <prefork/response.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace prefork {

// How a response's body is delimited on the wire.
enum class Framing { none, content_length, chunked };

// What the worker decides about a response's head, besides the handler's fields.
struct HeadFraming {
    unsigned version = 11;  // of the request: 10 or 11
    Framing framing = Framing::content_length;
    std::uint64_t content_length = 0;  // with Framing::content_length
    std::string_view date;             // the Date header's value
};

// Writes the status line and headers of `message` into `out` (cleared first; its capacity
// is reused), with the headers the worker owns: Server, Date, the framing (Content-Length
// or Transfer-Encoding: chunked) and Connection. The handler's own values of those are
// replaced, except that its "Connection: close" is honoured: it turns `keep_alive` off.
// False, and `out` unusable, when a field name or value could split the response (a
// line break, a control character): nothing of it may be sent.
bool write_response_head(std::string& out, const Response::Message& message, const HeadFraming& how,
                         bool& keep_alive);

}  // namespace prefork

#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prefork {

namespace http = boost::beast::http;

// An HTTP request as a handler sees it: the message, the values of the route's {name}
// segments, and the query string. Cheap to move; copy it only when you must.
class Request {
  public:
    using Message = http::request<http::string_body>;

    Request() = default;
    explicit Request(Message message);

    http::verb method() const { return message_.method(); }
    std::string_view method_string() const { return message_.method_string(); }
    // The request target as sent: path and query ("/users/7?full=1").
    std::string_view target() const { return message_.target(); }
    // The target without its query ("/users/7").
    std::string_view path() const;
    // What follows '?' in the target, undecoded ("full=1"); empty when there is none.
    std::string_view query_string() const;
    // The percent-decoded value of query parameter `name`, or nullopt when it is absent.
    std::optional<std::string> query(std::string_view name) const;
    // The percent-decoded value of the route's {name} segment; empty when the route has none.
    std::string_view param(std::string_view name) const;
    // The value of header `name` (case-insensitive); empty when absent.
    std::string_view header(std::string_view name) const;
    const std::string& body() const { return message_.body(); }
    bool keep_alive() const { return message_.keep_alive(); }

    // The underlying Boost.Beast message, for everything else.
    const Message& message() const { return message_; }
    Message& message() { return message_; }

    // Set by the router when it matched a route.
    void set_params(std::vector<std::pair<std::string, std::string>> params) {
        params_ = std::move(params);
    }

  private:
    Message message_;
    std::vector<std::pair<std::string, std::string>> params_;
};

// Decodes %XX escapes (and '+' as space when `plus_is_space`); nullopt for a bad escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

}  // namespace prefork

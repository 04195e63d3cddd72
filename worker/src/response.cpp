#include <prefork/response.hpp>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

namespace prefork {

Response::Response() {
    message_.result(http::status::ok);
}

Response::Response(int status, std::string body, std::string_view content_type) {
    message_.result(static_cast<unsigned>(status));
    message_.set(http::field::content_type, content_type);
    message_.body() = std::move(body);
}

Response Response::text(std::string body, int status) {
    return Response(status, std::move(body), "text/plain; charset=utf-8");
}

Response Response::json(std::string body, int status) {
    return Response(status, std::move(body), "application/json");
}

Response Response::bytes(std::string body, std::string_view content_type, int status) {
    return Response(status, std::move(body), content_type);
}

Response Response::error(int status) {
    auto reason = http::obsolete_reason(static_cast<http::status>(status));
    return text(std::to_string(status) + " " + std::string(reason) + "\n", status);
}

Response& Response::set_status(int status) {
    message_.result(static_cast<unsigned>(status));
    return *this;
}

Response& Response::set_header(std::string_view name, std::string_view value) {
    message_.set(name, value);
    return *this;
}

std::string_view Response::header(std::string_view name) const {
    auto found = message_.find(name);
    if (found == message_.end()) return {};
    return {found->value().data(), found->value().size()};
}

}  // namespace prefork

#include <prefork/response.hpp>

#include "field_syntax.hpp"
#include "response_file.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>

#include <cerrno>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>

namespace prefork {
namespace {

void check_field(std::string_view name, std::string_view value) {
    if (!is_field_name(name)) {
        throw std::invalid_argument("header name \"" + std::string(name) + "\" is not a token");
    }
    if (!is_safe_field_value(value)) {
        throw std::invalid_argument("the value of header " + std::string(name) +
                                    " holds CR, LF or NUL");
    }
}

}  // namespace

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

Response Response::file(const std::string& path, std::string_view content_type) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return error(errno == EACCES ? 403 : 404);
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        ::close(fd);
        return error(404);
    }
    Response response(200, "", content_type);
    response.message_.set(http::field::accept_ranges, "bytes");
    response.file_ =
        std::make_shared<detail::ResponseFile>(fd, static_cast<std::uint64_t>(info.st_size));
    return response;
}

Response& Response::set_header(std::string_view name, std::string_view value) {
    check_field(name, value);
    message_.set(name, value);
    return *this;
}

std::string_view Response::header(std::string_view name) const {
    auto found = message_.find(name);
    if (found == message_.end()) return {};
    return {found->value().data(), found->value().size()};
}

}  // namespace prefork

#include "http_client.hpp"

#include "eventually.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace prefork::testing {

namespace asio = boost::asio;

namespace {

// A socket for Beast's synchronous reads that gives up after a timeout. (Asio's own
// blocking reads ignore SO_RCVTIMEO: on EAGAIN they poll again without a limit.)
struct TimedReader {
    asio::generic::stream_protocol::socket& socket;
    std::chrono::milliseconds timeout;

    template <class Buffers>
    std::size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
        pollfd ready{socket.native_handle(), POLLIN, 0};
        int n;
        do {
            n = ::poll(&ready, 1, static_cast<int>(timeout.count()));
        } while (n < 0 && errno == EINTR);
        if (n == 0) {
            ec = asio::error::timed_out;
            return 0;
        }
        return socket.read_some(buffers, ec);
    }
    template <class Buffers>
    std::size_t read_some(const Buffers& buffers) {
        boost::system::error_code ec;
        std::size_t n = read_some(buffers, ec);
        if (ec) throw boost::system::system_error(ec);
        return n;
    }
};

}  // namespace

HttpConnection::HttpConnection(std::uint16_t port, std::chrono::milliseconds timeout)
    : socket_(io_) {
    asio::ip::tcp::socket tcp(io_);
    tcp.connect({asio::ip::make_address("127.0.0.1"), port});
    socket_ = asio::generic::stream_protocol::socket(std::move(tcp));
    set_timeout(timeout);
}

HttpConnection::HttpConnection(const std::string& unix_path, std::chrono::milliseconds timeout)
    : socket_(io_) {
    asio::local::stream_protocol::socket local(io_);
    local.connect(asio::local::stream_protocol::endpoint(unix_path));
    socket_ = asio::generic::stream_protocol::socket(std::move(local));
    set_timeout(timeout);
}

void HttpConnection::set_timeout(std::chrono::milliseconds timeout) {
    timeout_ = timeout;
}

HttpResponse HttpConnection::request(http::verb method, const std::string& target,
                                     const std::string& body, const std::string& content_type) {
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "127.0.0.1");
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    request.body() = body;
    request.prepare_payload();
    http::write(socket_, request);
    return read_response(method == http::verb::head);
}

void HttpConnection::send_raw(const std::string& bytes) {
    asio::write(socket_, asio::buffer(bytes));
}

HttpResponse HttpConnection::read_response(bool head) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 31);
    parser.skip(head);
    TimedReader reader{socket_, timeout_};
    http::read(reader, buffer_, parser);
    return parser.release();
}

bool HttpConnection::closed_by_peer() {
    if (buffer_.size() > 0) return false;
    char byte;
    boost::system::error_code ec;
    TimedReader reader{socket_, timeout_};
    std::size_t n = reader.read_some(asio::buffer(&byte, 1), ec);
    return n == 0 && (ec == asio::error::eof || ec == asio::error::connection_reset);
}

HttpResponse http_get(std::uint16_t port, const std::string& target) {
    return HttpConnection(port).get(target);
}

unsigned wait_for_status(std::uint16_t port, const std::string& target, unsigned status,
                         std::chrono::milliseconds timeout) {
    unsigned seen = 0;
    eventually(
        [&] {
            seen = http_get(port, target).result_int();
            return seen == status;
        },
        timeout);
    return seen;
}

}  // namespace prefork::testing

#include "connection_socket.hpp"

#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/socket_ops.hpp>

#include <utility>

namespace prefork {

namespace asio = boost::asio;

void ConnectionSocket::is_sole_descriptor() {
    impl_.get_implementation().state_ &= ~asio::detail::socket_ops::possible_dup;
}

ConnectionSocket::InputWait::InputWait()
    : reactor_op(boost::system::error_code(), &InputWait::perform, &InputWait::complete) {}

void ConnectionSocket::InputWait::start(ConnectionSocket& socket, std::shared_ptr<void> keep,
                                        Resume resume, void* target) {
    keep_ = std::move(keep);
    resume_ = resume;
    target_ = target;
    ec_ = {};
    auto& reactor = asio::use_service<asio::detail::reactor>(socket.get_executor().context());
    auto& impl = socket.impl_.get_implementation();
    // Speculative: performed at once if an edge came since the flag was last cleared.
    reactor.start_op(asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, this, false,
                     true);
}

// Called at once (an edge came since the last wait) or on the next edge. "Exhausted" clears
// the reactor's flag, so that the wait after this one is queued until another edge.
asio::detail::reactor_op::status ConnectionSocket::InputWait::perform(reactor_op*) {
    return done_and_exhausted;
}

void ConnectionSocket::InputWait::complete(void* owner, asio::detail::operation* base,
                                           const boost::system::error_code&, std::size_t) {
    auto* wait = static_cast<InputWait*>(base);
    auto keep = std::move(wait->keep_);  // `wait` is a member of what it keeps
    if (!owner) return;                  // the loop is being destroyed
    asio::detail::fenced_block fence(asio::detail::fenced_block::half);
    wait->resume_(wait->target_, wait->ec_);
}

}  // namespace prefork

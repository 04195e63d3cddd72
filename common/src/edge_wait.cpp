#include <prefork/common/edge_wait.hpp>

#include <boost/asio/detail/fenced_block.hpp>

#include <utility>

namespace prefork {

namespace asio = boost::asio;

EdgeWait::EdgeWait()
    : reactor_op(boost::system::error_code(), &EdgeWait::perform, &EdgeWait::complete) {}

void EdgeWait::start(asio::execution_context& io, int descriptor,
                     asio::detail::reactor::per_descriptor_data& reactor_data, bool fresh,
                     std::shared_ptr<void> keep, Resume resume, void* target) {
    outstanding_ = true;
    keep_ = std::move(keep);
    resume_ = resume;
    target_ = target;
    ec_ = {};
    auto& reactor = asio::use_service<asio::detail::reactor>(io);
    // Speculative: performed at once if an edge came since the flag was last cleared (the
    // flag is set for a descriptor that has just entered epoll: that edge is still to come).
    starting_fresh_ = fresh;
    reactor.start_op(asio::detail::reactor::read_op, descriptor, reactor_data, this, false, true);
    starting_fresh_ = false;
}

// Called at once (an edge came since the last wait) or on the next edge. "Exhausted" clears
// the reactor's flag, so that the wait after this one is queued until another edge.
asio::detail::reactor_op::status EdgeWait::perform(reactor_op* base) {
    if (static_cast<EdgeWait*>(base)->starting_fresh_) return not_done;
    return done_and_exhausted;
}

void EdgeWait::complete(void* owner, asio::detail::operation* base,
                        const boost::system::error_code&, std::size_t) {
    auto* wait = static_cast<EdgeWait*>(base);
    auto keep = std::move(wait->keep_);  // `wait` may be a member of what it keeps
    wait->outstanding_ = false;
    if (!owner || wait->resume_ == nullptr) return;  // the loop is being destroyed, or detached
    asio::detail::fenced_block fence(asio::detail::fenced_block::half);
    wait->resume_(wait->target_, wait->ec_);
}

}  // namespace prefork

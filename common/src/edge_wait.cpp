#include <prefork/common/edge_wait.hpp>

#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/version.hpp>

#include <type_traits>
#include <utility>

#include <sys/epoll.h>

static_assert(BOOST_ASIO_VERSION == 102600, "EdgeWait reads Asio 1.26's (Boost 1.81's) reactor");

namespace prefork {

namespace asio = boost::asio;

namespace {

// The reactor's epoll descriptor and a descriptor's registered events are private to Asio;
// an explicit instantiation may name them (access is not checked there), and hands them out
// through a friend function.
template <class Tag, typename Tag::type Member>
struct Expose {
    friend typename Tag::type member_of(Tag) { return Member; }
};

using DescriptorState = std::remove_pointer_t<asio::detail::reactor::per_descriptor_data>;

struct EpollDescriptor {
    using type = int asio::detail::epoll_reactor::*;
    friend type member_of(EpollDescriptor);
};
struct RegisteredEvents {
    using type = std::uint32_t DescriptorState::*;
    friend type member_of(RegisteredEvents);
};

}  // namespace

template struct Expose<EpollDescriptor, &asio::detail::epoll_reactor::epoll_fd_>;
template struct Expose<RegisteredEvents, &DescriptorState::registered_events_>;

std::uint32_t EdgeWait::last_reported(asio::detail::reactor::per_descriptor_data data) {
    // The state's base (private) is the operation that carries the events to its completion.
    auto* operation = (asio::detail::scheduler_operation*)data;
    return operation->*(&EdgeWait::task_result_);
}

bool EdgeWait::watch_also(asio::execution_context& io, int descriptor,
                          asio::detail::reactor::per_descriptor_data data, std::uint32_t events) {
    auto& reactor = asio::use_service<asio::detail::reactor>(io);
    std::uint32_t& registered = data->*member_of(RegisteredEvents{});
    if (registered == 0) return false;  // not in epoll (a regular file)
    epoll_event event{};
    event.events = registered | events;
    event.data.ptr = data;
    if (::epoll_ctl(reactor.*member_of(EpollDescriptor{}), EPOLL_CTL_MOD, descriptor, &event) !=
        0) {
        return false;
    }
    registered = event.events;
    return true;
}

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
    if (reactor_ == nullptr || context_ != &io) {  // the registry's look-up takes a lock
        reactor_ = &asio::use_service<asio::detail::reactor>(io);
        context_ = &io;
    }
    auto& reactor = *reactor_;
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

#pragma once

#include <boost/intrusive/list_hook.hpp>

namespace prefork {

class Connection;

// A connection's place in its server's list of idle keep-alive connections (the longest
// idle first), from which the server closes one to admit a new client at its connection
// limit. Unlinked when the connection receives a byte, closes or goes.
struct IdleEntry
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
    explicit IdleEntry(Connection* c) : connection(c) {}
    Connection* connection;
};

}  // namespace prefork

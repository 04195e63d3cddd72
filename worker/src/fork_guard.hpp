#pragma once

namespace prefork::fork_guard {

// The descriptors a child forked without exec must not keep: the worker's listening
// sockets, its control socket and its client connections. A pthread_atfork child handler
// closes every registered descriptor with close(), which is async-signal-safe, so that even
// `fork()` in a handler (the child living on) never holds the port or a client. The child
// keeps whatever user code opened itself.
//
// Registration is lock-free (one bit per descriptor) and may happen on any thread.
void install();
void add(int fd);
void remove(int fd);

}  // namespace prefork::fork_guard

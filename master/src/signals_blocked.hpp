#pragma once

#include <signal.h>

namespace prefork::master {

// Every signal stays pending while the master forks: delivered in the child before it has
// the default dispositions back, a signal would run the master's handler there and be
// written to the master's own signal pipe (one Ctrl-C seen twice).
class SignalsBlocked {
  public:
    SignalsBlocked() {
        sigset_t all;
        sigfillset(&all);
        ::sigprocmask(SIG_BLOCK, &all, &previous_);
    }
    ~SignalsBlocked() { ::sigprocmask(SIG_SETMASK, &previous_, nullptr); }
    SignalsBlocked(const SignalsBlocked&) = delete;
    SignalsBlocked& operator=(const SignalsBlocked&) = delete;

  private:
    sigset_t previous_;
};

// In a child forked under SignalsBlocked (async-signal-safe): every disposition back to the
// default (the master ignores SIGPIPE and handles the rest), then the mask emptied.
inline void restore_default_signals() {
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; ++signal) {
        if (signal != SIGKILL && signal != SIGSTOP) ::sigaction(signal, &default_action, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace prefork::master

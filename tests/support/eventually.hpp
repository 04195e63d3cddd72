#pragma once

#include <chrono>
#include <thread>

namespace prefork::testing {

// Polls `condition` every 20 ms until it holds or `timeout` has passed; returns its last
// value. What a test waits for is what a process does, never a fixed time.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

}  // namespace prefork::testing

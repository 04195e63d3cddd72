// A worker that becomes ready, serves, and dies by SIGSEGV after CRASH_AFTER_MS
// milliseconds: a crash loop for the supervisor to survive.

#include <prefork/worker.hpp>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
    const char* after = std::getenv("CRASH_AFTER_MS");
    std::chrono::milliseconds delay(after ? std::atoi(after) : 1000);
    std::thread([delay] {
        std::this_thread::sleep_for(delay);
        ::signal(SIGSEGV, SIG_DFL);
        ::raise(SIGSEGV);
    }).detach();

    prefork::App app;
    app.get("/", [](const prefork::Request&) { return prefork::Response::text("still alive"); });
    return app.run(argc, argv);
}

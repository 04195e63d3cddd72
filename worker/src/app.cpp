#include <prefork/app.hpp>

#include "router.hpp"
#include "run_modes.hpp"

#include <prefork/common/control_protocol.hpp>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace prefork {

App::App() : router_(std::make_unique<Router>()) {}
App::~App() = default;
App::App(App&&) noexcept = default;
App& App::operator=(App&&) noexcept = default;

App& App::add_route(http::verb method, std::string pattern, Handler handler) {
    router_->add(method, pattern, std::move(handler));
    return *this;
}
App& App::add_route(http::verb method, std::string pattern, AsyncHandler handler) {
    router_->add(method, pattern, std::move(handler));
    return *this;
}
App& App::add_route(http::verb method, std::string pattern, CoroutineHandler handler) {
    router_->add(method, pattern, std::move(handler));
    return *this;
}
App& App::add_route(http::verb method, std::string pattern, RespondingCoroutineHandler handler) {
    router_->add(method, pattern, std::move(handler));
    return *this;
}

int App::run(int argc, char** argv) {
    const char* control_fd = std::getenv(control::kControlFdEnv);
    if (control_fd == nullptr) return run_standalone(*router_, argc, argv);
    int fd = -1;
    auto [end, ec] = std::from_chars(control_fd, control_fd + std::strlen(control_fd), fd);
    if (ec != std::errc{} || *end != '\0' || fd < 0) {
        std::cerr << "prefork worker: invalid " << control::kControlFdEnv << "=" << control_fd
                  << "\n";
        return 2;
    }
    return run_under_master(*router_, fd);
}

}  // namespace prefork

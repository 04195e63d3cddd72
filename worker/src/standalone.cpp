#include "fork_guard.hpp"
#include "run_modes.hpp"
#include "worker_runtime.hpp"

#include <prefork/common/descriptor_limit.hpp>
#include <prefork/common/inherited_fds.hpp>
#include <prefork/common/listen_address.hpp>
#include <prefork/common/log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

namespace prefork {
namespace {

constexpr auto kGracefulTimeout = std::chrono::seconds(30);

std::string program_name(char** argv) {
    std::string name = argv[0] ? argv[0] : "worker";
    auto slash = name.rfind('/');
    return slash == std::string::npos ? name : name.substr(slash + 1);
}

int usage_error(const std::string& program, const std::string& message) {
    std::cerr << program << ": " << message << "\n";
    return 2;
}

}  // namespace

int run_standalone(const Router& router, int argc, char** argv) {
    std::string program = program_name(argv);
    std::vector<ListenAddress> addresses;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << "usage: " << program << " [--bind ADDR]...\n"
                      << "Serves alone on each ADDR (HOST:PORT, [V6]:PORT or unix:PATH;\n"
                      << "default 127.0.0.1:8080). Under the prefork master it is a worker.\n";
            return 0;
        }
        std::string value;
        if (arg.starts_with("--bind=")) {
            value = arg.substr(7);
        } else if (arg == "--bind" && i + 1 < argc) {
            value = argv[++i];
        } else {
            return usage_error(program, "unknown argument " + arg + " (see --help)");
        }
        try {
            addresses.push_back(parse_listen_address(value));
        } catch (const AddressError& error) {
            return usage_error(program, error.what());
        }
    }
    if (addresses.empty()) addresses.push_back(parse_listen_address("127.0.0.1:8080"));
    log::set_role("worker");
    raise_open_file_limit();  // before the fork guard sizes its table by the limit
    fork_guard::install();
    mark_close_on_exec_from(3);  // what a shell or parent leaked stops here
    ::signal(SIGPIPE, SIG_IGN);

    WorkerRuntime runtime(router);
    boost::asio::io_context& io = runtime.io;
    Server& server = runtime.server;
    for (const ListenAddress& address : addresses) {
        try {
            UniqueFd fd = bind_listener(address);
            log::info("listening on ", local_address(fd.get()));
            server.listen(std::move(fd), address.to_string());
        } catch (const AddressError& error) {
            std::cerr << program << ": " << error.what() << "\n";
            return 1;
        }
    }

    boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGQUIT);
    std::function<void()> wait_for_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int signal) {
            if (ec) return;
            if (signal == SIGQUIT || server.draining()) return io.stop();
            server.drain(kGracefulTimeout, [&io] { io.stop(); });
            wait_for_signal();
        });
    };
    wait_for_signal();
    runtime.run();

    for (const ListenAddress& address : addresses) {
        if (address.kind == ListenAddress::Kind::unix_socket) ::unlink(address.path.c_str());
    }
    return 0;
}

}  // namespace prefork

// prefork-demo: the endpoints that prefork's tests and benchmarks rely on (DESIGN.md).
//
//   prefork --workers 2 -- prefork-demo
//   prefork-demo --bind 127.0.0.1:8080        (alone, without the master)

#include <prefork/worker.hpp>

#include <boost/asio/detached.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace {

using prefork::Request;
using prefork::Responder;
using prefork::Response;

// The whole-number query parameter `name` within [0, max]; `fallback` when absent;
// nullopt when malformed.
std::optional<long long> number_param(const Request& request, std::string_view name,
                                      long long fallback, long long max) {
    auto text = request.query(name);
    if (!text) return fallback;
    long long value = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
    if (text->empty() || ec != std::errc{} || end != text->data() + text->size() || value < 0 ||
        value > max) {
        return std::nullopt;
    }
    return value;
}

Response bad_parameter(std::string_view name, long long max) {
    return Response::text("query parameter " + std::string(name) +
                              " must be a whole number from 0 to " + std::to_string(max) + "\n",
                          400);
}

// Waits (at most about 2 s, on a loaded machine) until a process we started is asleep: a
// diagnostic endpoint only, which blocks its loop meanwhile.
void wait_until_sleeping(pid_t pid) {
    for (int i = 0; i < 2000; ++i) {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        auto close = text.rfind(')');
        if (close == std::string::npos || close + 2 >= text.size() || text[close + 2] == 'S')
            return;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

// The three ways the demo hangs its loop on purpose, named (and never inlined) so that a
// hung worker's stack in the master's log names them.
[[gnu::noinline]] void block_for(long long ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

[[gnu::noinline]] void spin_for(long long ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    volatile std::uint64_t turns = 0;
    while (std::chrono::steady_clock::now() < end) turns = turns + 1;
}

// A read from a peer that never sends, as a blocking client of a stalled service would.
[[gnu::noinline]] bool wait_in_recv(long long ms) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return false;
    timeval limit{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
    ::setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    char byte;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) ::recv(pair[0], &byte, 1, 0);
    ::close(pair[0]);
    ::close(pair[1]);
    return true;
}

constexpr long long kMaxMillis = 10 * 60 * 1000;
constexpr long long kMaxBytes = 1LL << 30;
constexpr long long kWholeBytes = 64 * 1024;  // /bytes up to this: one plain response

// Writes `n` bytes of 'x' to `stream` in parts of 16 KiB, each once the stream has room.
prefork::Task<void> write_bytes(prefork::Stream stream, std::size_t n) {
    constexpr std::size_t kPart = 16 * 1024;
    for (std::size_t left = n; left > 0;) {
        std::size_t size = std::min(left, kPart);
        std::string part(size, 'x');  // a named local: see docs/handlers.md on GCC 12
        if (!co_await stream.async_write(std::move(part))) co_return;  // the client left
        left -= size;
    }
    stream.finish();
}

}  // namespace

int main(int argc, char** argv) {
    prefork::App app;

    app.get("/", [](const Request&) { return Response::text("Hello, World!"); });

    app.get("/pid", [](const Request&) { return Response::text(std::to_string(::getpid())); });

    app.post("/echo", [](const Request& request) {
        std::string_view type = request.header("Content-Type");
        return Response::bytes(request.body(), type.empty() ? "application/octet-stream" : type);
    });

    // N bytes of 'x'. Up to 64 KiB in one response; more through a Stream whose bounded
    // buffer the client drains: a slow reader of a large body costs its socket's buffers and
    // 64 KiB of the worker's memory, not the whole body.
    app.get("/bytes", [](Request request, Responder out) {
        auto n = number_param(request, "n", 0, kMaxBytes);
        if (!n) return (void)out.send(bad_parameter("n", kMaxBytes));
        if (*n <= kWholeBytes) {
            return (void)out.send(Response::bytes(std::string(static_cast<std::size_t>(*n), 'x')));
        }
        auto loop = out.executor();
        prefork::Stream stream =
            out.stream(Response(200, "", "application/octet-stream"), kWholeBytes);
        boost::asio::co_spawn(loop, write_bytes(std::move(stream), static_cast<std::size_t>(*n)),
                              boost::asio::detached);
    });

    app.get("/env", [](const Request& request) {
        auto name = request.query("name");
        if (!name || name->empty())
            return Response::text("query parameter name is required\n", 400);
        const char* value = std::getenv(name->c_str());
        if (value == nullptr) return Response::text(*name + " is not set\n", 404);
        return Response::text(value);
    });

    // Blocks this worker's event loop on purpose: every other connection of this worker
    // waits, while the other workers keep serving.
    app.get("/block", [](const Request& request) {
        auto ms = number_param(request, "ms", 1000, kMaxMillis);
        if (!ms) return bad_parameter("ms", kMaxMillis);
        block_for(*ms);
        return Response::text("blocked " + std::to_string(*ms) + " ms\n");
    });

    // Keeps this worker's loop busy computing, on purpose.
    app.get("/spin", [](const Request& request) {
        auto ms = number_param(request, "ms", 1000, kMaxMillis);
        if (!ms) return bad_parameter("ms", kMaxMillis);
        spin_for(*ms);
        return Response::text("spun " + std::to_string(*ms) + " ms\n");
    });

    // Blocks this worker's loop in a system call (recv on a socket nobody writes to).
    app.get("/recv", [](const Request& request) {
        auto ms = number_param(request, "ms", 1000, kMaxMillis);
        if (!ms) return bad_parameter("ms", kMaxMillis);
        if (!wait_in_recv(*ms)) return Response::text("socketpair failed\n", 500);
        return Response::text("waited in recv " + std::to_string(*ms) + " ms\n");
    });

    // Leaks on purpose: N MiB allocated, every page touched (so it is resident), and kept for
    // the life of the worker. Answers the worker's total leak so far.
    app.get("/leak", [](const Request& request) {
        auto mb = number_param(request, "mb", 1, 64 * 1024);
        if (!mb) return bad_parameter("mb", 64 * 1024);
        static std::vector<std::unique_ptr<char[]>> kept;
        static long long total = 0;
        auto block = std::make_unique_for_overwrite<char[]>(static_cast<std::size_t>(*mb) << 20);
        for (long long at = 0; at < (*mb << 20); at += 4096) block[at] = static_cast<char>(at);
        kept.push_back(std::move(block));
        total += *mb;
        return Response::text("leaked " + std::to_string(total) + " MiB\n");
    });

    app.get("/crash", [](const Request&) -> Response {
        ::signal(SIGSEGV, SIG_DFL);  // past any sanitizer's handler: die as a crash would
        ::raise(SIGSEGV);
        std::abort();
    });

    // Waits on a timer (a coroutine): the loop stays free for other requests meanwhile.
    app.get("/sleep", [](Request request) -> prefork::Task<Response> {
        auto ms = number_param(request, "ms", 1000, kMaxMillis);
        if (!ms) co_return bad_parameter("ms", kMaxMillis);
        co_await prefork::sleep_for(std::chrono::milliseconds(*ms));
        co_return Response::text("slept " + std::to_string(*ms) + " ms\n");
    });

    // Blocks a thread of the offload pool, not the loop.
    app.get("/offload", [](Request request) -> prefork::Task<Response> {
        auto ms = number_param(request, "ms", 1000, kMaxMillis);
        if (!ms) co_return bad_parameter("ms", kMaxMillis);
        std::thread::id worked_on = co_await prefork::offload([ms = *ms] {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            return std::this_thread::get_id();
        });
        co_return Response::text(
            "worked " + std::to_string(*ms) + " ms off the loop" +
            (worked_on == std::this_thread::get_id() ? " (on the loop?!)" : "") + "\n");
    });

    // Answers later from another thread (of the offload pool), through a Responder.
    app.get("/later", [](Request request, Responder out) {
        auto ms = number_param(request, "ms", 100, kMaxMillis);
        if (!ms) return (void)out.send(bad_parameter("ms", kMaxMillis));
        boost::asio::post(prefork::offload_executor(), [ms = *ms, out = std::move(out)]() mutable {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            out.send(Response::text("answered from another thread after " + std::to_string(ms) +
                                    " ms\n"));
        });
    });

    // A chunked response: N parts of B bytes ('a'-filled, then 'b', ...), M ms apart. Each
    // write waits until its part fits the stream's buffer (a slow client slows this down
    // instead of filling the worker's memory); a client that leaves ends the coroutine.
    app.get("/stream", [](Request request, Responder out) -> prefork::Task<void> {
        auto chunks = number_param(request, "chunks", 10, 1'000'000);
        auto interval = number_param(request, "interval_ms", 100, kMaxMillis);
        auto size = number_param(request, "size", 16, 64 << 20);
        if (!chunks) co_return (void) out.send(bad_parameter("chunks", 1'000'000));
        if (!interval) co_return (void) out.send(bad_parameter("interval_ms", kMaxMillis));
        if (!size) co_return (void) out.send(bad_parameter("size", 64 << 20));
        prefork::Stream stream = out.stream(Response(200, "", "text/plain; charset=utf-8"));
        for (long long i = 0; i < *chunks; ++i) {
            if (i > 0) co_await prefork::sleep_for(std::chrono::milliseconds(*interval));
            std::string part(static_cast<std::size_t>(*size), static_cast<char>('a' + i % 26));
            if (!co_await stream.async_write(std::move(part))) co_return;  // the client left
        }
        stream.finish();
    });

    // Starts `sleep S` as a child of this worker and answers its pid at once.
    app.get("/spawn", [](const Request& request) {
        auto seconds = number_param(request, "seconds", 5, 24 * 3600);
        if (!seconds) return bad_parameter("seconds", 24 * 3600);
        pid_t pid = prefork::spawn_process({"sleep", std::to_string(*seconds)});
        return Response::text(std::to_string(pid));
    });

    // Forks without exec, as the handler of a service that prefork's users came from did:
    // the child sleeps and _exits. It holds no listener and no client connection (the worker
    // closes those in every forked child). Answers the child's pid.
    app.get("/fork", [](const Request& request) {
        auto seconds = number_param(request, "seconds", 5, 24 * 3600);
        if (!seconds) return bad_parameter("seconds", 24 * 3600);
        pid_t pid = ::fork();
        if (pid == 0) {  // only async-signal-safe calls from here on
            unsigned left = static_cast<unsigned>(*seconds);
            while (left > 0) left = ::sleep(left);
            ::_exit(0);
        }
        if (pid < 0) return Response::text("fork failed\n", 500);
        prefork::adopt_child(pid);
        return Response::text(std::to_string(pid));
    });

    // Starts `sleep 5`, answers the descriptors it holds ("N -> target" lines, read from
    // /proc while it runs), then ends it.
    app.get("/child-fds", [](const Request&) {
        pid_t pid = prefork::spawn_process({"sleep", "5"});
        wait_until_sleeping(pid);  // past the dynamic loader's own, short-lived descriptors
        std::string listing;
        std::string dir = "/proc/" + std::to_string(pid) + "/fd";
        std::vector<int> fds;
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            fds.push_back(std::stoi(entry.path().filename().string()));
        }
        std::sort(fds.begin(), fds.end());
        for (int fd : fds) {
            std::error_code ec;
            auto target = std::filesystem::read_symlink(dir + "/" + std::to_string(fd), ec);
            if (!ec) listing += std::to_string(fd) + " -> " + target.string() + "\n";
        }
        ::kill(pid, SIGTERM);
        return Response::text(listing);
    });

    return app.run(argc, argv);
}

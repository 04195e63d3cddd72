// A worker for the streaming tests: streams written from threads.
//
//   GET /produce?total=N&part=P   a thread writes N bytes ('x') in parts of P with
//                                 Stream::write, then finish(); &pool=1: a thread of the
//                                 offload pool; &close=1: the head says Connection: close
//   GET /goodbye                  "bye" with Connection: close
//   GET /progress                 "written=X finished=F gone=G disconnects=D" of every
//                                 /produce so far
//   GET /drop?parts=N             a thread writes N parts, then drops the Stream unfinished
//   GET /async-callbacks          two parts by Stream::async_write with callbacks; the
//                                 second says whether the first callback ran on the loop
//   GET /write-on-loop            calls Stream::write on the loop (a logic error)
//   GET /coroutine-stream?parts=N&interval_ms=M
//                                 a coroutine handler with a Responder streams N parts
//                                 ("part I\n"), M ms apart
//   GET /coroutine-throws?parts=N a coroutine handler streams N parts (none: no answer
//                                 yet), then throws "boom"
//   GET /coroutine-goes-on        a coroutine handler answers "sent", then sleeps 100 ms
//                                 and counts itself done
//   GET /coroutine-silent         a coroutine handler ends without answering
//   GET /coroutine-slow?ms=N      a coroutine handler answers "late" after N ms
//   GET /coroutines               "running=R went_on=G" of the coroutine handlers above
//   GET /                         "ok"

#include <prefork/worker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

using prefork::Request;
using prefork::Responder;
using prefork::Response;

std::atomic<long long> g_written{0};
std::atomic<int> g_finished{0};
std::atomic<int> g_gone{0};  // writes that reported false: the client had left
std::atomic<int> g_disconnects{0};
std::atomic<int> g_coroutines_running{0};
std::atomic<int> g_went_on{0};  // /coroutine-goes-on handlers that ran to their end

// Counts a coroutine handler while its frame exists (it ends, throws or is cancelled).
struct Running {
    Running() { ++g_coroutines_running; }
    ~Running() { --g_coroutines_running; }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;
};

long long number(const Request& request, std::string_view name, long long fallback) {
    auto text = request.query(name);
    return text ? std::stoll(*text) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
    prefork::App app;

    app.get("/", [](const Request&) { return Response::text("ok"); });

    app.get("/produce", [](Request request, Responder out) {
        long long total = number(request, "total", 1 << 20);
        auto part = static_cast<std::size_t>(number(request, "part", 65536));
        out.on_disconnect([] { ++g_disconnects; });
        Response head(200, "", "application/octet-stream");
        if (number(request, "close", 0)) head.set_header("Connection", "close");
        prefork::Stream stream = out.stream(std::move(head));
        auto produce = [stream, total, part]() mutable {
            for (long long left = total; left > 0;) {
                auto size = static_cast<std::size_t>(std::min<long long>(left, part));
                if (!stream.write(std::string(size, 'x'))) {
                    ++g_gone;
                    return;
                }
                left -= static_cast<long long>(size);
                g_written += static_cast<long long>(size);
            }
            if (stream.finish()) ++g_finished;
        };
        if (!number(request, "pool", 0)) return std::thread(std::move(produce)).detach();
        // On the offload pool, which a stopping worker joins.
        boost::asio::co_spawn(
            out.executor(),
            [produce = std::move(produce)]() mutable -> prefork::Task<void> {
                co_await prefork::offload(std::move(produce));
            },
            boost::asio::detached);
    });

    // A handler that asks for the connection to be closed after its response.
    app.get("/goodbye",
            [](const Request&) { return Response::text("bye").set_header("Connection", "close"); });

    app.get("/progress", [](const Request&) {
        return Response::text("written=" + std::to_string(g_written.load()) +
                              " finished=" + std::to_string(g_finished.load()) +
                              " gone=" + std::to_string(g_gone.load()) +
                              " disconnects=" + std::to_string(g_disconnects.load()) + "\n");
    });

    app.get("/drop", [](Request request, Responder out) {
        long long parts = number(request, "parts", 2);
        prefork::Stream stream = out.stream(Response(200, "", "text/plain"));
        std::thread([stream = std::move(stream), parts]() mutable {
            for (long long i = 0; i < parts; ++i) stream.write("part " + std::to_string(i) + "\n");
            // dropped here without finish(): the response is cut off
        }).detach();
    });

    // async_write with plain callbacks: they run on the loop (the answer says where).
    app.get("/async-callbacks", [](Request, Responder out) {
        std::thread::id loop = std::this_thread::get_id();
        prefork::Stream stream = out.stream(Response(200, "", "text/plain"));
        stream.async_write("first\n", [stream, loop](boost::system::error_code ec) mutable {
            if (ec) return;
            std::string where =
                std::this_thread::get_id() == loop ? "on the loop\n" : "off the loop\n";
            stream.async_write(std::move(where),
                               [stream](boost::system::error_code) mutable { stream.finish(); });
        });
    });

    app.get("/write-on-loop", [](Request, Responder out) {
        prefork::Stream stream = out.stream(Response(200, "", "text/plain"));
        stream.write("never");  // throws std::logic_error: this is the loop
    });

    app.get("/coroutine-stream", [](Request request, Responder out) -> prefork::Task<void> {
        Running running;
        long long parts = number(request, "parts", 3);
        auto interval = std::chrono::milliseconds(number(request, "interval_ms", 10));
        prefork::Stream stream = out.stream(Response(200, "", "text/plain"));
        for (long long i = 1; i <= parts; ++i) {
            if (i > 1) co_await prefork::sleep_for(interval);
            // A temporary inside the co_await on purpose: it must be safe (ASan checks).
            if (!co_await stream.async_write("part " + std::to_string(i) + "\n")) co_return;
        }
        stream.finish();
    });

    app.get("/coroutine-throws", [](Request request, Responder out) -> prefork::Task<void> {
        Running running;
        long long parts = number(request, "parts", 0);
        if (parts > 0) {
            prefork::Stream stream = out.stream(Response(200, "", "text/plain"));
            for (long long i = 1; i <= parts; ++i) {
                if (!co_await stream.async_write("part " + std::to_string(i) + "\n")) co_return;
            }
            co_await prefork::sleep_for(std::chrono::milliseconds(50));
        }
        throw std::runtime_error("boom");
    });

    app.get("/coroutine-goes-on", [](Request, Responder out) -> prefork::Task<void> {
        Running running;
        co_await prefork::sleep_for(std::chrono::milliseconds(10));
        out.send(Response::text("sent"));
        co_await prefork::sleep_for(std::chrono::milliseconds(100));
        ++g_went_on;
    });

    app.get("/coroutine-silent", [](Request, Responder) -> prefork::Task<void> {
        Running running;
        co_await prefork::sleep_for(std::chrono::milliseconds(10));
    });

    app.get("/coroutine-slow", [](Request request, Responder out) -> prefork::Task<void> {
        Running running;
        co_await prefork::sleep_for(std::chrono::milliseconds(number(request, "ms", 10)));
        out.send(Response::text("late"));
    });

    app.get("/coroutines", [](const Request&) {
        return Response::text("running=" + std::to_string(g_coroutines_running.load()) +
                              " went_on=" + std::to_string(g_went_on.load()));
    });

    return app.run(argc, argv);
}

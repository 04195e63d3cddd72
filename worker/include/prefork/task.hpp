#pragma once

// Coroutine handlers: a handler that returns prefork::Task<prefork::Response> runs on the
// worker's event loop and may co_await timers, offloaded work and other asynchronous
// operations without ever blocking the loop.
//
//   app.get("/report", [](prefork::Request req) -> prefork::Task<prefork::Response> {
//       co_await prefork::sleep_for(std::chrono::milliseconds(10));
//       auto rows = co_await prefork::offload([] { return slow_query(); });
//       co_return prefork::Response::json(render(rows));
//   });
//
// Lifetimes: take the Request by value (it lives in the coroutine's frame); never capture
// a reference to anything that is gone when the coroutine resumes.
//
// GCC 12 (Debian 12's compiler) destroys a lambda that captures by value twice when it is
// written inside a co_await expression (a compiler bug: a double free). Name it first:
//
//   auto work = [rows = std::move(rows)] { return render(rows); };   // not inline
//   auto page = co_await prefork::offload(std::move(work));
//
// Likewise build a Command before co_await run_process(std::move(command)). When the client
// disconnects, or the handler timeout passes, the awaits in progress end with
// boost::asio::error::operation_aborted (thrown as boost::system::system_error).

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <type_traits>
#include <utility>

namespace prefork {

template <class T>
using Task = boost::asio::awaitable<T>;

// The worker's offload pool (PREFORK_OFFLOAD_THREADS threads, default 4; started at its
// first use, from any thread): where blocking work goes. A callback handler posts to it and
// answers from there:
//
//   app.get("/report", [](prefork::Request, prefork::Responder out) {
//       boost::asio::post(prefork::offload_executor(), [out = std::move(out)]() mutable {
//           out.send(prefork::Response::text(slow_report()));
//       });
//   });
//
// A coroutine awaits offload() instead.
boost::asio::thread_pool::executor_type offload_executor();

// Waits on a timer of the worker's loop; the loop serves other requests meanwhile.
inline Task<void> sleep_for(std::chrono::steady_clock::duration duration) {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, duration);
    co_await timer.async_wait(boost::asio::use_awaitable);
}

// Runs `fn` (blocking work: a query, a computation, a file) on the worker's offload pool
// and resumes on the loop with its result, or its exception. The pool has
// PREFORK_OFFLOAD_THREADS threads (default 4). `fn` must not touch the Request's or the
// loop's objects by reference unless they outlive it: move what it needs into it.
template <class Fn>
auto offload(Fn fn) -> Task<std::invoke_result_t<Fn&>> {
    using Result = std::invoke_result_t<Fn&>;
    auto on_pool = [fn = std::move(fn)]() mutable -> Task<Result> {
        if constexpr (std::is_void_v<Result>) {
            fn();
            co_return;
        } else {
            co_return fn();
        }
    };
    // Work on the pool is not interrupted: a cancellation (the client left) is not passed
    // to it (Asio would end the pool's coroutine with an exception nobody catches); the
    // handler sees operation_aborted at its next await instead.
    // (Not `co_return co_await` of a void await: GCC 12 miscompiles that.)
    auto uncancelled = boost::asio::bind_cancellation_slot(boost::asio::cancellation_slot(),
                                                           boost::asio::use_awaitable);
    if constexpr (std::is_void_v<Result>) {
        co_await boost::asio::co_spawn(offload_executor(), std::move(on_pool), uncancelled);
    } else {
        co_return co_await boost::asio::co_spawn(offload_executor(), std::move(on_pool),
                                                 uncancelled);
    }
}

}  // namespace prefork

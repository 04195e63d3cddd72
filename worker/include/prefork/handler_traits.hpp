#pragma once

// What kind of handler a callable is, decided at compile time, and the mistakes that are
// refused there instead of crashing at run time.

#include <prefork/request.hpp>
#include <prefork/responder.hpp>
#include <prefork/response.hpp>
#include <prefork/task.hpp>

#include <functional>
#include <tuple>
#include <type_traits>

namespace prefork {

// A synchronous handler: runs on the worker's event loop and returns the response.
// Keep it short: while it runs, no other connection of this worker makes progress. It may
// take the Request by value (it is moved in, not copied) or by const reference.
using Handler = std::function<Response(Request&&)>;

// An asynchronous handler: runs on the worker's event loop, returns at once, and answers
// later through the Responder, from any thread. Nothing else on this connection happens
// until it does.
using AsyncHandler = std::function<void(Request, Responder)>;

// A coroutine handler (see <prefork/task.hpp>): runs on the worker's event loop and
// co_awaits without blocking it.
using CoroutineHandler = std::function<Task<Response>(Request)>;

// A coroutine handler that answers through its Responder: with send(), or with stream()
// and then co_await stream.async_write(part) for each part. Like a coroutine handler it
// runs on the loop, its awaits end with operation_aborted when the client leaves or the
// handler timeout passes, and an exception it lets out is logged (the client gets 500, or
// a stream already started is cut off). It may go on after it has answered.
using RespondingCoroutineHandler = std::function<Task<void>(Request, Responder)>;

namespace detail {

// The parameters of a callable with one call operator (a lambda, a function object, a
// function pointer, a std::function); unknown for a generic lambda.
template <class T>
struct parameters_of : parameters_of<decltype(&T::operator())> {};
template <class R, class... A>
struct parameters_of<R (*)(A...)> {
    using type = std::tuple<A...>;
};
template <class R, class... A>
struct parameters_of<R(A...)> {
    using type = std::tuple<A...>;
};
template <class R, class C, class... A>
struct parameters_of<R (C::*)(A...)> {
    using type = std::tuple<A...>;
};
template <class R, class C, class... A>
struct parameters_of<R (C::*)(A...) const> {
    using type = std::tuple<A...>;
};
template <class R, class C, class... A>
struct parameters_of<R (C::*)(A...) noexcept> {
    using type = std::tuple<A...>;
};
template <class R, class C, class... A>
struct parameters_of<R (C::*)(A...) const noexcept> {
    using type = std::tuple<A...>;
};

template <class T>
concept has_known_parameters = requires {
    typename parameters_of<T>::type;
};

template <class Tuple>
struct any_reference;
template <class... A>
struct any_reference<std::tuple<A...>> : std::bool_constant<(std::is_reference_v<A> || ...)> {};

// True unless the callable's parameters are known and one of them is a reference.
template <class F>
constexpr bool takes_parameters_by_value() {
    if constexpr (has_known_parameters<F>) {
        return !any_reference<typename parameters_of<F>::type>::value;
    } else {
        return true;  // a generic lambda: auto deduces a value, auto& is not seen here
    }
}

template <class F>
inline constexpr bool is_coroutine_handler = std::is_invocable_r_v<Task<Response>, F&, Request>;
template <class F>
inline constexpr bool is_responding_coroutine_handler =
    std::is_invocable_r_v<Task<void>, F&, Request, Responder>;
// Returning exactly void: a callable returning a value here (a Task above all, which would
// never run) is a mistake, not a callback handler.
template <class F>
constexpr bool returns_void_given_responder() {
    if constexpr (std::is_invocable_v<F&, Request, Responder>) {
        return std::is_void_v<std::invoke_result_t<F&, Request, Responder>>;
    } else {
        return false;
    }
}
template <class F>
inline constexpr bool is_async_handler = returns_void_given_responder<F>();
template <class F>
inline constexpr bool is_sync_handler =
    std::is_invocable_r_v<Response, F&, Request> && !is_coroutine_handler<F>;

template <class>
inline constexpr bool always_false = false;

// One of the four std::function types, from any callable of one of the four shapes.
template <class F>
auto as_handler(F&& handler) {
    using Callable = std::decay_t<F>;
    if constexpr (is_coroutine_handler<Callable>) {
        static_assert(takes_parameters_by_value<Callable>(),
                      "a coroutine handler takes its parameters by value: write "
                      "[](prefork::Request request) -> prefork::Task<prefork::Response>; a "
                      "reference parameter dangles after the first co_await");
        return CoroutineHandler(std::forward<F>(handler));
    } else if constexpr (is_responding_coroutine_handler<Callable>) {
        static_assert(takes_parameters_by_value<Callable>(),
                      "a coroutine handler takes its parameters by value: write "
                      "[](prefork::Request request, prefork::Responder out) -> "
                      "prefork::Task<void>; a reference parameter dangles after the first "
                      "co_await");
        return RespondingCoroutineHandler(std::forward<F>(handler));
    } else if constexpr (is_async_handler<Callable>) {
        return AsyncHandler(std::forward<F>(handler));
    } else if constexpr (is_sync_handler<Callable>) {
        return Handler(std::forward<F>(handler));
    } else {
        static_assert(always_false<F>,
                      "a handler is one of: prefork::Response(const prefork::Request&), "
                      "void(prefork::Request, prefork::Responder) (the Responder taken by "
                      "value), prefork::Task<prefork::Response>(prefork::Request), or "
                      "prefork::Task<void>(prefork::Request, prefork::Responder)");
    }
}

}  // namespace detail
}  // namespace prefork

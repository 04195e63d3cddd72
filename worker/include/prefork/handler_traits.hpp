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
// Keep it short: while it runs, no other connection of this worker makes progress.
using Handler = std::function<Response(const Request&)>;

// An asynchronous handler: runs on the worker's event loop, returns at once, and answers
// later through the Responder, from any thread. Nothing else on this connection happens
// until it does.
using AsyncHandler = std::function<void(Request, Responder)>;

// A coroutine handler (see <prefork/task.hpp>): runs on the worker's event loop and
// co_awaits without blocking it.
using CoroutineHandler = std::function<Task<Response>(Request)>;

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
inline constexpr bool is_async_handler = std::is_invocable_r_v<void, F&, Request, Responder>;
template <class F>
inline constexpr bool is_sync_handler =
    std::is_invocable_r_v<Response, F&, const Request&> && !is_coroutine_handler<F>;

template <class>
inline constexpr bool always_false = false;

// One of the three std::function types, from any callable of one of the three shapes.
template <class F>
auto as_handler(F&& handler) {
    using Callable = std::decay_t<F>;
    if constexpr (is_coroutine_handler<Callable>) {
        static_assert(takes_parameters_by_value<Callable>(),
                      "a coroutine handler takes its parameters by value: write "
                      "[](prefork::Request request) -> prefork::Task<prefork::Response>; a "
                      "reference parameter dangles after the first co_await");
        return CoroutineHandler(std::forward<F>(handler));
    } else if constexpr (is_async_handler<Callable>) {
        return AsyncHandler(std::forward<F>(handler));
    } else if constexpr (is_sync_handler<Callable>) {
        return Handler(std::forward<F>(handler));
    } else {
        static_assert(always_false<F>,
                      "a handler is one of: prefork::Response(const prefork::Request&), "
                      "void(prefork::Request, prefork::Responder) (the Responder taken by "
                      "value), or prefork::Task<prefork::Response>(prefork::Request)");
    }
}

}  // namespace detail
}  // namespace prefork

#pragma once

#include <prefork/handler_traits.hpp>

#include <functional>
#include <memory>
#include <string>

namespace prefork {

class Router;

// An application: its routes, and run() to serve them.
//
// Route patterns are paths whose segments may be {name} placeholders ("/users/{id}"),
// matched one whole segment each; Request::param("id") gives the value.
class App {
  public:
    App();
    ~App();
    App(App&&) noexcept;
    App& operator=(App&&) noexcept;

    // Adds a route for one method. A path with routes but none for the request's method
    // answers 405 with Allow; a path with no route answers 404. HEAD is answered by the
    // GET route when there is no HEAD route, without the body.
    //
    // `handler` is any callable of one of four shapes (<prefork/handler_traits.hpp>):
    //   Response(const Request&)          synchronous, on the loop (or Response(Request))
    //   void(Request, Responder)          answers later, from any thread
    //   Task<Response>(Request)           a coroutine on the loop
    //   Task<void>(Request, Responder)    a coroutine on the loop that answers through the
    //                                     Responder: send() or stream(), then its parts
    // Anything else does not compile, nor does a coroutine that takes a reference (it would
    // dangle after its first co_await).
    template <class F>
    App& route(http::verb method, std::string pattern, F&& handler) {
        return add_route(method, std::move(pattern), detail::as_handler(std::forward<F>(handler)));
    }
    template <class F>
    App& get(std::string pattern, F&& handler) {
        return route(http::verb::get, std::move(pattern), std::forward<F>(handler));
    }
    template <class F>
    App& post(std::string pattern, F&& handler) {
        return route(http::verb::post, std::move(pattern), std::forward<F>(handler));
    }
    template <class F>
    App& put(std::string pattern, F&& handler) {
        return route(http::verb::put, std::move(pattern), std::forward<F>(handler));
    }
    template <class F>
    App& patch(std::string pattern, F&& handler) {
        return route(http::verb::patch, std::move(pattern), std::forward<F>(handler));
    }
    template <class F>
    App& del(std::string pattern, F&& handler) {
        return route(http::verb::delete_, std::move(pattern), std::forward<F>(handler));
    }

    // Serves until stopped and returns the process's exit status.
    // Under the prefork master (PREFORK_CONTROL_FD set) it is a worker: it takes its
    // listening sockets from the master and stops when the master says so or goes away.
    // Alone it serves by itself on --bind ADDR (repeatable; default 127.0.0.1:8080);
    // TERM or INT stops it gracefully, a second one or QUIT at once.
    int run(int argc, char** argv);

    const Router& router() const { return *router_; }

  private:
    App& add_route(http::verb method, std::string pattern, Handler handler);
    App& add_route(http::verb method, std::string pattern, AsyncHandler handler);
    App& add_route(http::verb method, std::string pattern, CoroutineHandler handler);
    App& add_route(http::verb method, std::string pattern, RespondingCoroutineHandler handler);

    std::unique_ptr<Router> router_;
};

}  // namespace prefork

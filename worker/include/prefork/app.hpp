#pragma once

#include <prefork/request.hpp>
#include <prefork/responder.hpp>
#include <prefork/response.hpp>
#include <prefork/task.hpp>

#include <functional>
#include <memory>
#include <string>

namespace prefork {

class Router;

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
    App& route(http::verb method, std::string pattern, Handler handler);
    App& route(http::verb method, std::string pattern, AsyncHandler handler);
    App& route(http::verb method, std::string pattern, CoroutineHandler handler);
    App& get(std::string pattern, Handler handler);
    App& get(std::string pattern, AsyncHandler handler);
    App& get(std::string pattern, CoroutineHandler handler);
    App& post(std::string pattern, Handler handler);
    App& post(std::string pattern, AsyncHandler handler);
    App& post(std::string pattern, CoroutineHandler handler);
    App& put(std::string pattern, Handler handler);
    App& put(std::string pattern, AsyncHandler handler);
    App& put(std::string pattern, CoroutineHandler handler);
    App& patch(std::string pattern, Handler handler);
    App& patch(std::string pattern, AsyncHandler handler);
    App& patch(std::string pattern, CoroutineHandler handler);
    App& del(std::string pattern, Handler handler);
    App& del(std::string pattern, AsyncHandler handler);
    App& del(std::string pattern, CoroutineHandler handler);

    // Serves until stopped and returns the process's exit status.
    // Under the prefork master (PREFORK_CONTROL_FD set) it is a worker: it takes its
    // listening sockets from the master and stops when the master says so or goes away.
    // Alone it serves by itself on --bind ADDR (repeatable; default 127.0.0.1:8080);
    // TERM or INT stops it gracefully, a second one or QUIT at once.
    int run(int argc, char** argv);

    const Router& router() const { return *router_; }

  private:
    std::unique_ptr<Router> router_;
};

}  // namespace prefork

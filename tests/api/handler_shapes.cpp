// Compiled by the Api.* tests: each -D selects one way of writing a handler; the mistakes
// must not compile, and the message must say what to write instead.

#include <prefork/app.hpp>

int main() {
    prefork::App app;
#if defined(COROUTINE_BY_VALUE)
    app.get("/", [](prefork::Request request) -> prefork::Task<prefork::Response> {
        co_return prefork::Response::text(std::string(request.target()));
    });
#elif defined(COROUTINE_BY_REFERENCE)
    app.get("/", [](const prefork::Request& request) -> prefork::Task<prefork::Response> {
        co_return prefork::Response::text(std::string(request.target()));
    });
#elif defined(RESPONDER_BY_REFERENCE)
    app.get("/", [](prefork::Request, prefork::Responder& out) {
        out.send(prefork::Response::text("x"));
    });
#elif defined(ALL_SHAPES)
    app.get("/sync", [](const prefork::Request&) { return prefork::Response::text("x"); });
    app.post("/async", [](prefork::Request, prefork::Responder out) {
        out.send(prefork::Response::text("x"));
    });
    app.put("/coroutine", [](prefork::Request) -> prefork::Task<prefork::Response> {
        co_return prefork::Response::text("x");
    });
    prefork::Handler as_function = [](const prefork::Request&) {
        return prefork::Response::text("x");
    };
    app.del("/function", as_function);
#endif
    return 0;
}

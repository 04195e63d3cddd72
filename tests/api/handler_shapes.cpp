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
#elif defined(RESPONDING_COROUTINE_BY_REFERENCE)
    app.get("/", [](prefork::Request, prefork::Responder& out) -> prefork::Task<void> {
        out.send(prefork::Response::text("x"));
        co_return;
    });
#elif defined(TASK_OF_RESPONSE_WITH_A_RESPONDER)
    app.get("/", [](prefork::Request, prefork::Responder out) -> prefork::Task<prefork::Response> {
        out.send(prefork::Response::text("never runs"));
        co_return prefork::Response::text("x");
    });
#elif defined(ALL_SHAPES)
    app.get("/sync", [](const prefork::Request&) { return prefork::Response::text("x"); });
    app.post("/async", [](prefork::Request, prefork::Responder out) {
        out.send(prefork::Response::text("x"));
    });
    app.put("/coroutine", [](prefork::Request) -> prefork::Task<prefork::Response> {
        co_return prefork::Response::text("x");
    });
    app.patch("/responding", [](prefork::Request, prefork::Responder out) -> prefork::Task<void> {
        prefork::Stream stream = out.stream(prefork::Response(200, "", "text/plain"));
        if (co_await stream.async_write("part\n")) stream.finish();
    });
    app.get("/by-value", [](prefork::Request request) {
        return prefork::Response::text(std::string(request.target()));
    });
    prefork::Handler as_function = [](const prefork::Request&) {
        return prefork::Response::text("x");
    };
    app.del("/function", as_function);
#endif
    return 0;
}

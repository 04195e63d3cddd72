// A worker for the hostile-client tests: files, handlers that try to break their own
// response, and a stream that goes quiet for good.
//
//   GET /file?path=P              Response::file(P): the whole file, one byte range (206),
//                                 416 past its end; 404 when there is no such file
//   GET /header-crlf              set_header("X-Injected", a value holding CR LF and a
//                                 forged "X-Forged: yes" field): set_header throws
//   GET /header-bad-name          set_header("Bad Name", "v"): set_header throws
//   GET /content-type-crlf        Response::bytes with that value as its content type
//   GET /message-crlf             the same CR LF value set through response.message(),
//                                 past set_header's checks (the worker must refuse it)
//   GET /message-bad-name         a name that is not a token, set through message()
//   GET /stream-head-crlf         a stream whose head has the CR LF value, set through
//                                 message(); its part "never sent" must not be
//   GET /quiet-stream?idle_ms=N   a stream that writes "first part\n", sets its idle
//                                 timeout to N ms (default 500) and never writes again;
//                                 the Stream is kept alive, so only the timeout ends it
//   GET /                         "ok"

#include <prefork/worker.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace {

using prefork::Request;
using prefork::Responder;
using prefork::Response;

constexpr std::string_view kSplittingValue = "a\r\nX-Forged: yes";

// Streams that must never end by being dropped; only the loop touches them. Never freed
// (reachable), so that no Stream outlives the loop in a static destructor.
std::vector<prefork::Stream>* const g_quiet_streams = new std::vector<prefork::Stream>;

}  // namespace

int main(int argc, char** argv) {
    prefork::App app;

    app.get("/", [](const Request&) { return Response::text("ok"); });

    app.get("/file", [](const Request& request) {
        auto path = request.query("path");
        if (!path) return Response::text("query parameter path is required\n", 400);
        return Response::file(*path);
    });

    app.get("/header-crlf", [](const Request&) {
        return Response::text("never sent").set_header("X-Injected", kSplittingValue);
    });

    app.get("/header-bad-name", [](const Request&) {
        return Response::text("never sent").set_header("Bad Name", "v");
    });

    app.get("/content-type-crlf", [](const Request&) {
        return Response::bytes("never sent", "text/plain\r\nX-Forged: yes");
    });

    app.get("/message-crlf", [](const Request&) {
        Response response = Response::text("never sent");
        response.message().set("X-Injected", kSplittingValue);
        return response;
    });

    app.get("/message-bad-name", [](const Request&) {
        Response response = Response::text("never sent");
        response.message().set("Bad Name", "v");
        return response;
    });

    app.get("/stream-head-crlf", [](Request, Responder out) {
        Response head(200, "", "text/plain");
        head.message().set("X-Injected", kSplittingValue);
        prefork::Stream stream = out.stream(std::move(head));
        stream.async_write("never sent",
                           [stream](boost::system::error_code) mutable { stream.finish(); });
    });

    app.get("/quiet-stream", [](Request request, Responder out) {
        auto text = request.query("idle_ms");
        auto idle = std::chrono::milliseconds(text ? std::stoll(*text) : 500);
        prefork::Stream stream = out.stream(Response(200, "", "text/plain"));
        stream.async_write("first part\n", [](boost::system::error_code) {});
        stream.set_idle_timeout(idle);
        g_quiet_streams->push_back(std::move(stream));
    });

    return app.run(argc, argv);
}

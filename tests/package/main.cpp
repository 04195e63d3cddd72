#include <prefork/worker.hpp>

int main(int argc, char** argv) {
    prefork::App app;
    app.get("/", [](const prefork::Request&) { return prefork::Response::text("installed"); });
    return app.run(argc, argv);
}

// A worker for the subprocess tests: runs processes through run_process (coroutine,
// callback, from the offload pool) and through every other way a handler may start one.
//
//   POST /run            {"argv": [...], "env": [...], "cwd": "", "input": "", "timeout_ms": 0}
//   POST /run-callback   the same through the callback form, cancelled on disconnect
//   POST /run-offload    the same from a thread of the offload pool (use_future)
//   POST /run-reaped-elsewhere
//                        the callback form while the loop itself reaps the child first
//                        (a blocking waitpid(-1) 100 ms after the start)
//   GET  /child-fds?via=M&thread=loop|offload
//        M: run_process, spawn_process, boost_process, posix_spawn, fork_exec, system;
//        answers the descriptors that process held ("N -> target" lines)
//   GET  /busy?ms=N      holds a thread of the offload pool for N ms
//   GET  /               "ok"
//
// PREFORK_TEST_FD_REPORT names the fd_report program.

#include <prefork/worker.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace {

using prefork::Request;
using prefork::Responder;
using prefork::Response;
using prefork::Task;
namespace json = boost::json;

prefork::Command parse_command(const std::string& body) {
    json::object spec = json::parse(body).as_object();
    prefork::Command command;
    for (const auto& arg : spec.at("argv").as_array())
        command.argv.emplace_back(arg.as_string().c_str());
    if (const auto* env = spec.if_contains("env")) {
        command.env.emplace();
        for (const auto& var : env->as_array()) command.env->emplace_back(var.as_string().c_str());
    }
    if (const auto* cwd = spec.if_contains("cwd")) command.cwd = cwd->as_string().c_str();
    if (const auto* input = spec.if_contains("input")) command.input = input->as_string().c_str();
    if (const auto* ms = spec.if_contains("timeout_ms"))
        command.timeout = std::chrono::milliseconds(ms->to_number<long long>());
    if (const auto* limit = spec.if_contains("output_limit"))
        command.output_limit = limit->to_number<std::size_t>();
    return command;
}

Response describe(const prefork::ProcessResult& result) {
    json::object out;
    out["pid"] = result.pid;
    out["exit_code"] = result.exit_code;
    out["term_signal"] = result.term_signal;
    out["timed_out"] = result.timed_out;
    out["truncated"] = result.truncated;
    out["out"] = result.out;
    out["err"] = result.err;
    return Response::json(json::serialize(out));
}

Response failure(const std::string& what) {
    return Response::text("error: " + what + "\n", 500);
}

std::string fd_report() {
    const char* path = std::getenv("PREFORK_TEST_FD_REPORT");
    return path ? path : "fd_report";
}

// Starts fd_report (writing to `file`) the way `via` says, and waits for it where that way
// lets the caller wait. Blocking: runs on the loop or on an offload thread.
void start_reporter(const std::string& via, const std::string& file) {
    std::string program = fd_report();
    std::vector<std::string> argv = {program, file};
    if (via == "spawn_process") {
        prefork::spawn_process(argv);
    } else if (via == "run_process") {  // from a thread: the future form
        prefork::async_run_process(prefork::Command{.argv = argv}, boost::asio::use_future).get();
    } else if (via == "boost_process") {
        boost::process::child child(boost::process::exe = program, boost::process::args = {file});
        child.wait();
    } else if (via == "posix_spawn") {
        std::vector<char*> args = {argv[0].data(), argv[1].data(), nullptr};
        pid_t pid;
        if (::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0)
            throw std::runtime_error("posix_spawn failed");
        ::waitpid(pid, nullptr, 0);
    } else if (via == "fork_exec") {
        std::vector<char*> args = {argv[0].data(), argv[1].data(), nullptr};
        pid_t pid = ::fork();
        if (pid == 0) {
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        if (pid < 0) throw std::runtime_error("fork failed");
        ::waitpid(pid, nullptr, 0);
    } else if (via == "system") {
        if (std::system((program + " " + file).c_str()) != 0)
            throw std::runtime_error("system() failed");
    } else {
        throw std::invalid_argument("unknown via=" + via);
    }
}

std::atomic<int> g_reports{0};

}  // namespace

int main(int argc, char** argv) {
    prefork::App app;

    app.get("/", [](const Request&) { return Response::text("ok"); });

    app.get("/busy", [](Request request) -> Task<Response> {
        int ms = std::stoi(request.query("ms").value_or("1000"));
        co_await prefork::offload(
            [ms] { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); });
        co_return Response::text("done");
    });

    // With "stream": true, stdout is taken piece by piece (Command::on_stdout) and the
    // answer's "out" is the pieces joined, "pieces" their number.
    app.post("/run", [](Request request) -> Task<Response> {
        prefork::Command command = parse_command(request.body());
        bool stream = json::parse(request.body()).as_object().contains("stream");
        auto pieces = std::make_shared<std::vector<std::string>>();
        if (stream)
            command.on_stdout = [pieces](std::string_view piece) { pieces->emplace_back(piece); };
        try {
            prefork::ProcessResult result = co_await prefork::run_process(std::move(command));
            if (!stream) co_return describe(result);
            for (const auto& piece : *pieces) result.out += piece;
            Response answer = describe(result);
            answer.body().pop_back();  // '}'
            answer.body() += ",\"pieces\":" + std::to_string(pieces->size()) + "}";
            co_return answer;
        } catch (const boost::system::system_error& error) {
            co_return failure(error.code().message());
        }
    });

    app.post("/run-callback", [](Request request, Responder out) {
        auto shared = std::make_shared<Responder>(std::move(out));
        prefork::RunningProcess process = prefork::run_process(
            parse_command(request.body()),
            [shared](boost::system::error_code ec, prefork::ProcessResult result) {
                shared->send(ec ? failure(ec.message()) : describe(result));
            });
        shared->on_disconnect([process] { process.cancel(); });
    });

    app.post("/run-reaped-elsewhere", [](Request request, Responder out) {
        auto shared = std::make_shared<Responder>(std::move(out));
        prefork::run_process(parse_command(request.body()),
                             [shared](boost::system::error_code ec, prefork::ProcessResult result) {
                                 shared->send(ec ? failure(ec.message()) : describe(result));
                             });
        auto timer = std::make_shared<boost::asio::steady_timer>(shared->executor(),
                                                                 std::chrono::milliseconds(100));
        timer->async_wait([timer](boost::system::error_code) {
            int status = 0;
            while (::waitpid(-1, &status, 0) < 0 && errno == EINTR) {
            }
        });
    });

    app.post("/run-offload", [](Request request) -> Task<Response> {
        prefork::Command command = parse_command(request.body());
        // Named first: GCC 12 destroys a capturing lambda written inside co_await twice.
        auto on_thread = [command = std::move(command)]() mutable {
            try {
                return describe(
                    prefork::async_run_process(std::move(command), boost::asio::use_future).get());
            } catch (const boost::system::system_error& error) {
                return failure(error.code().message());
            }
        };
        co_return co_await prefork::offload(std::move(on_thread));
    });

    app.get("/child-fds", [](Request request) -> Task<Response> {
        std::string via = request.query("via").value_or("run_process");
        bool offload = request.query("thread").value_or("loop") == "offload";
        std::string file = "/tmp/prefork-fd-report-" + std::to_string(::getpid()) + "-" +
                           std::to_string(g_reports++);
        try {
            if (offload) {
                auto on_thread = [via, file] { start_reporter(via, file); };
                co_await prefork::offload(std::move(on_thread));
            } else if (via == "run_process") {
                prefork::Command command;
                command.argv = {fd_report(), file};
                co_await prefork::run_process(std::move(command));
            } else {
                start_reporter(via, file);
            }
        } catch (const std::exception& error) {
            co_return failure(error.what());
        }
        for (int i = 0; i < 500 && !std::filesystem::exists(file); ++i)
            co_await prefork::sleep_for(std::chrono::milliseconds(10));
        std::ifstream in(file);
        std::stringstream listing;
        listing << in.rdbuf();
        std::filesystem::remove(file);
        co_return Response::text(listing.str());
    });

    return app.run(argc, argv);
}

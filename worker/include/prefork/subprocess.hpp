#pragma once

// Starting processes from handlers.
//
//   app.get("/convert", [](prefork::Request req) -> prefork::Task<prefork::Response> {
//       prefork::Command convert{.argv = {"convert", "in.png", "out.jpg"}};
//       convert.timeout = std::chrono::seconds(10);
//       prefork::ProcessResult done = co_await prefork::run_process(std::move(convert));
//       if (!done.success()) co_return prefork::Response::text(done.err, 500);
//       co_return prefork::Response::text(done.out);
//   });
//
// A process started here holds descriptors 0, 1 and 2 only, whatever else the worker has
// open (listeners, clients, the control socket): see docs/fork-safety.md.

#include <prefork/task.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/system/error_code.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prefork {

// What to run, and how.
struct Command {
    // The program and its arguments; argv[0] is looked up on PATH unless it contains a '/'.
    std::vector<std::string> argv{};
    // "NAME=VALUE" entries: the program's whole environment. Unset: the worker's own.
    std::optional<std::vector<std::string>> env{};
    // The program's working directory. Empty: the worker's.
    std::string cwd{};
    // Written to the program's standard input, which is then closed. Empty: /dev/null.
    std::string input{};
    // Once it passes, the program and every process in its process group are killed
    // (SIGKILL) and the result says timed_out. Zero: no limit.
    std::chrono::milliseconds timeout{0};
    // Bytes kept of each of stdout and stderr; what comes beyond is read and dropped, and
    // the result says truncated.
    std::size_t output_limit = 16 * 1024 * 1024;
    // Set: that stream is handed here piece by piece as it arrives (on the worker's loop)
    // instead of being collected into the result.
    std::function<void(std::string_view)> on_stdout{};
    std::function<void(std::string_view)> on_stderr{};
};

// How a process ended, and what it wrote.
struct ProcessResult {
    pid_t pid = -1;
    int exit_code = -1;   // its exit status; -1 when a signal ended it
    int term_signal = 0;  // the signal that ended it; 0 when it exited
    bool timed_out = false;
    bool truncated = false;  // out or err reached Command::output_limit
    std::string out;         // its standard output (unless Command::on_stdout took it)
    std::string err;         // its standard error (unless Command::on_stderr took it)

    bool success() const { return exit_code == 0; }
};

// A process run_process started with a callback: lets any thread cancel it.
class RunningProcess {
  public:
    struct State;
    RunningProcess() = default;
    explicit RunningProcess(std::shared_ptr<State> state) : state_(std::move(state)) {}

    // Kills the process and its process group (SIGKILL); its callback then gets
    // operation_aborted. Safe from any thread, any number of times; a no-op once it ended.
    void cancel() const;

  private:
    std::shared_ptr<State> state_;
};

using ProcessCallback = std::function<void(boost::system::error_code, ProcessResult)>;

// Runs `command` and calls `done` on the worker's event loop once the process has ended and
// its output is read: with an empty error code and the result, or with the error that kept
// it from starting (no_such_file_or_directory, permission_denied, ...), operation_aborted
// when it was cancelled, or no_child_processes when other code of this process reaped it
// first (waitpid(-1, ...)), so that its exit status is unknown. Never blocks: callable from a
// handler, from a thread of the offload pool, from any thread of the worker while its App runs. The
// process is started with posix_spawn (safe in a threaded process; nothing but 0, 1, 2 inherited,
// default signal dispositions, an empty signal mask, its own process group) and awaited with
// Boost.Process on the worker's io_context. Throws std::logic_error when no App runs in this
// process.
RunningProcess run_process(Command command, ProcessCallback done);

namespace detail {
struct ProcessCompletion;
// The asynchronous operation behind the awaitable form: cancelling through the handler's
// cancellation slot kills the process.
void start_process(Command command, std::shared_ptr<ProcessCompletion> completion);
struct ProcessCompletion {
    virtual ~ProcessCompletion() = default;
    virtual void complete(boost::system::error_code ec, ProcessResult result) = 0;
    std::function<void()> on_cancel_request;  // set by start_process, on the loop
};
}  // namespace detail

// When the worker stops, the processes run_process still waits for are killed and their
// runs end with operation_aborted (processes from spawn_process are left running).
//
// The same as an Asio asynchronous operation, completion void(error_code, ProcessResult):
// `co_await async_run_process(cmd, boost::asio::use_awaitable)`, or `use_future` from a
// thread. A terminal cancellation of the operation kills the process.
template <class CompletionToken>
auto async_run_process(Command command, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken,
                                       void(boost::system::error_code, ProcessResult)>(
        [](auto handler, Command command) {
            using Handler = decltype(handler);
            struct Completion : detail::ProcessCompletion {
                explicit Completion(Handler h) : handler(std::move(h)) {}
                Handler handler;
                void complete(boost::system::error_code ec, ProcessResult result) override {
                    auto slot = boost::asio::get_associated_cancellation_slot(handler);
                    if (slot.is_connected()) slot.clear();
                    auto executor = boost::asio::get_associated_executor(handler);
                    boost::asio::dispatch(executor, [h = std::move(handler), ec,
                                                     result = std::move(result)]() mutable {
                        std::move(h)(ec, std::move(result));
                    });
                }
            };
            auto completion = std::make_shared<Completion>(std::move(handler));
            auto slot = boost::asio::get_associated_cancellation_slot(completion->handler);
            if (slot.is_connected()) {
                slot.assign([weak = std::weak_ptr<Completion>(completion)](
                                boost::asio::cancellation_type type) {
                    if ((type & boost::asio::cancellation_type::terminal) ==
                        boost::asio::cancellation_type::none)
                        return;
                    if (auto c = weak.lock(); c && c->on_cancel_request) c->on_cancel_request();
                });
            }
            detail::start_process(std::move(command), std::move(completion));
        },
        token, std::move(command));
}

// In a coroutine handler: runs `command` and resumes with the result once the process has
// ended. Throws boost::system::system_error when it cannot start. When the client
// disconnects (or the handler timeout passes) the process is killed and the await ends
// with operation_aborted.
Task<ProcessResult> run_process(Command command);

// Starts `argv[0]` (looked up on PATH unless it contains a '/') with the given arguments
// as a child of this worker and returns its pid at once; the worker reaps it when it
// exits. The child has the worker's standard input, output and error (so its output
// goes to the worker's log) and nothing else, default signal dispositions, and its own
// process group. Callable from any thread of the worker while its App runs.
// Throws std::system_error when the program cannot be started, std::logic_error when no
// App runs in this process.
pid_t spawn_process(const std::vector<std::string>& argv);

// Has the worker reap a child that user code started itself (fork(), posix_spawn()), so
// that it leaves no zombie. Callable from any thread of the worker while its App runs.
void adopt_child(pid_t pid);

}  // namespace prefork

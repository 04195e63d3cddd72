#include <prefork/subprocess.hpp>

#include "child_reaper.hpp"
#include "running_processes.hpp"
#include "spawn.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/process/v2/process.hpp>  // before process_handle.hpp: its header order works
#include <boost/process/v2/process_handle.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>

namespace prefork {

namespace asio = boost::asio;
using boost::system::error_code;

class ProcessRun;

namespace {

using Executor = asio::io_context::executor_type;

asio::io_context& worker_loop(const char* what) {
    ChildReaper* reaper = ChildReaper::current();
    if (reaper == nullptr) throw std::logic_error(std::string(what) + ": no App is running");
    return reaper->io();
}

// Every run not finished yet, so that a stopping worker can end them (see
// stop_running_processes): a thread waiting on a future must not wait forever.
std::mutex g_runs_mutex;
std::set<std::shared_ptr<ProcessRun>> g_runs;

}  // namespace

// One run of run_process, on the worker's loop: the process, its output pipes, its
// timeout. Every pending operation holds it.
class ProcessRun : public std::enable_shared_from_this<ProcessRun> {
  public:
    ProcessRun(asio::io_context& io, Command command,
               std::shared_ptr<detail::ProcessCompletion> completion)
        : io_(io), command_(std::move(command)), completion_(std::move(completion)) {}

    // On the loop.
    void start();
    // On the loop's thread, once it has stopped: kills the process, ends the run.
    void abort_at_stop();
    // Any thread.
    void request_cancel() {
        cancel_requested_.store(true);
        asio::post(io_, [self = shared_from_this()] { self->cancel(); });
    }

  private:
    struct Output {
        std::optional<asio::posix::stream_descriptor> pipe;
        std::array<char, 16384> buffer;
        std::string* collected = nullptr;
        std::function<void(std::string_view)>* handed_to = nullptr;
        bool done = false;
    };

    void cancel();
    void read(Output& output);
    void on_read(Output& output, error_code ec, std::size_t bytes);
    void take(Output& output, std::size_t bytes);
    void drain(Output& output);
    void on_exit(error_code ec, int status);
    void on_timeout();
    void finish(error_code ec);
    void maybe_finish();
    void kill_all();
    void start_process();

    asio::io_context& io_;
    Command command_;
    std::shared_ptr<detail::ProcessCompletion> completion_;
    std::atomic<bool> cancel_requested_{false};
    std::optional<boost::process::v2::basic_process_handle<Executor>> process_;
    int pidfd_ = -1;  // owned by process_
    std::optional<asio::posix::stream_descriptor> input_;
    std::optional<asio::steady_timer> timer_;
    Output out_, err_;
    ProcessResult result_;
    bool started_ = false;
    bool exited_ = false;
    bool cancelled_ = false;
    bool finished_ = false;
    error_code wait_error_;
};

void ProcessRun::start() {
    try {
        start_process();
    } catch (const boost::system::system_error& error) {  // the reactor refused a descriptor
        if (started_ && !exited_) kill_all();
        finish(error.code());
    }
}

void ProcessRun::start_process() {
    if (cancel_requested_.load()) return finish(asio::error::operation_aborted);
    UniqueFd out_read, out_write, err_read, err_write, in_read, in_write;
    error_code ec = make_pipe(out_read, out_write);
    if (!ec) ec = make_pipe(err_read, err_write);
    if (!ec && !command_.input.empty()) ec = make_pipe(in_read, in_write);
    UniqueFd null_input;
    if (!ec && command_.input.empty()) {
        null_input = UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        if (!null_input) ec = error_code(errno, boost::system::system_category());
    }
    if (ec) return finish(ec);

    Stdio stdio{command_.input.empty() ? null_input.get() : in_read.get(), out_write.get(),
                err_write.get()};
    pid_t pid = -1;
    ec = spawn(command_.argv, command_.env ? &*command_.env : nullptr, command_.cwd, stdio, pid);
    if (ec) return finish(ec);
    started_ = true;
    result_.pid = pid;
    // The child's ends now belong to the child alone: closing ours is what lets the
    // output pipes end when it exits.
    out_write.reset();
    err_write.reset();
    in_read.reset();

    // Awaited through a pidfd (no SIGCHLD involved), which also signals exactly this
    // process however late: its pid cannot be taken by another meanwhile.
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd_ < 0) {
        ec = error_code(errno, boost::system::system_category());
        ::kill(-pid, SIGKILL);  // not waited for yet: the pid is still this child's
        ::kill(pid, SIGKILL);
        if (ChildReaper* reaper = ChildReaper::current()) reaper->adopt(pid);
        exited_ = true;
        return finish(ec);
    }
    auto self = shared_from_this();
    process_.emplace(io_.get_executor(), pid, pidfd_);
    process_->async_wait([self](error_code ec, int status) { self->on_exit(ec, status); });

    out_.collected = &result_.out;
    err_.collected = &result_.err;
    if (command_.on_stdout) out_.handed_to = &command_.on_stdout;
    if (command_.on_stderr) err_.handed_to = &command_.on_stderr;
    out_.pipe.emplace(io_, out_read.release());
    err_.pipe.emplace(io_, err_read.release());
    for (Output* output : {&out_, &err_}) {
        output->pipe->non_blocking(true);
        read(*output);
    }

    if (in_write) {
        input_.emplace(io_, in_write.release());
        asio::async_write(*input_, asio::buffer(command_.input), [self](error_code, std::size_t) {
            // Written, or the program closed its input (EPIPE): it gets no more.
            error_code ignored;
            if (self->input_) self->input_->close(ignored);
        });
    }
    if (command_.timeout.count() > 0) {
        timer_.emplace(io_, command_.timeout);
        timer_->async_wait([self](error_code ec) {
            if (!ec) self->on_timeout();
        });
    }
}

void ProcessRun::read(Output& output) {
    output.pipe->async_read_some(
        asio::buffer(output.buffer),
        [self = shared_from_this(), &output](error_code ec, std::size_t bytes) {
            self->on_read(output, ec, bytes);
        });
}

void ProcessRun::on_read(Output& output, error_code ec, std::size_t bytes) {
    take(output, bytes);
    if (ec && ec != asio::error::operation_aborted) {  // end of file: the writers are gone
        output.done = true;
        output.pipe->close(ec);
        return maybe_finish();
    }
    if (exited_) {  // cancelled by on_exit: take what is left in the pipe, then stop
        drain(output);
        return maybe_finish();
    }
    read(output);
}

void ProcessRun::take(Output& output, std::size_t bytes) {
    if (bytes == 0) return;
    std::string_view piece(output.buffer.data(), bytes);
    if (output.handed_to != nullptr) return (*output.handed_to)(piece);
    std::size_t room =
        command_.output_limit - std::min(command_.output_limit, output.collected->size());
    if (piece.size() > room) result_.truncated = true;
    output.collected->append(piece.substr(0, room));
}

// After the program exited: what it wrote is in the pipe already. Output that a process it
// left running in the background writes later is not collected (nor waited for).
void ProcessRun::drain(Output& output) {
    if (output.done) return;
    output.done = true;
    for (int reads = 0; reads < 256; ++reads) {
        ssize_t n =
            ::read(output.pipe->native_handle(), output.buffer.data(), output.buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        take(output, static_cast<std::size_t>(n));
    }
    error_code ignored;
    output.pipe->close(ignored);
}

void ProcessRun::on_exit(error_code ec, int status) {
    if (ec == asio::error::interrupted) {
        // waitpid() interrupted by a signal (SIGCHLD of another child: Asio installs its
        // handlers without SA_RESTART). The process may still run: wait again.
        auto self = shared_from_this();
        process_->async_wait([self](error_code ec, int status) { self->on_exit(ec, status); });
        return;
    }
    exited_ = true;
    if (timer_) timer_->cancel();
    if (ec) {
        // Its exit status is lost (ECHILD: other code in this process reaped it): an error,
        // never a made-up status.
        wait_error_ = ec;
    } else {
        if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) result_.term_signal = WTERMSIG(status);
    }
    for (Output* output : {&out_, &err_}) {
        error_code ignored;
        if (!output->done) output->pipe->cancel(ignored);  // its read ends, then drain()
    }
    maybe_finish();
}

void ProcessRun::on_timeout() {
    if (exited_) return;
    result_.timed_out = true;
    kill_all();
}

void ProcessRun::cancel() {
    if (finished_ || exited_ || !started_) return;  // not started: start() sees the flag
    cancelled_ = true;
    kill_all();
}

// The process through its pidfd; then, while it is not yet waited for (so that its pid,
// which names its process group, cannot have been reused), everything in its group.
void ProcessRun::kill_all() {
    if (pidfd_ < 0) return;
    if (::syscall(SYS_pidfd_send_signal, pidfd_, SIGKILL, nullptr, 0) == 0) {
        ::kill(-result_.pid, SIGKILL);
    }
}

void ProcessRun::abort_at_stop() {
    if (finished_) return;
    if (started_ && !exited_) kill_all();
    finish(asio::error::operation_aborted);
}

void ProcessRun::maybe_finish() {
    if (exited_ && out_.done && err_.done)
        finish(cancelled_ ? error_code(asio::error::operation_aborted) : wait_error_);
}

void ProcessRun::finish(error_code ec) {
    if (finished_) return;
    finished_ = true;
    {
        std::lock_guard lock(g_runs_mutex);
        g_runs.erase(shared_from_this());
    }
    if (input_) {
        error_code ignored;
        input_->close(ignored);
    }
    completion_->on_cancel_request = nullptr;
    auto completion = std::move(completion_);
    completion->complete(
        ec, ec && ec != asio::error::operation_aborted ? ProcessResult{} : std::move(result_));
}

struct RunningProcess::State {
    std::weak_ptr<ProcessRun> run;
};

void RunningProcess::cancel() const {
    if (!state_) return;
    if (auto run = state_->run.lock()) run->request_cancel();
}

namespace {

std::shared_ptr<ProcessRun> launch(Command command,
                                   std::shared_ptr<detail::ProcessCompletion> completion) {
    asio::io_context& io = worker_loop("run_process");
    auto run = std::make_shared<ProcessRun>(io, std::move(command), completion);
    completion->on_cancel_request = [weak = std::weak_ptr<ProcessRun>(run)] {
        if (auto run = weak.lock()) run->request_cancel();
    };
    {
        std::lock_guard lock(g_runs_mutex);
        g_runs.insert(run);
    }
    // Posted even from the loop: a completion never runs inside the call that started it.
    asio::post(io, [run] { run->start(); });
    return run;
}

}  // namespace

void stop_running_processes() {
    std::set<std::shared_ptr<ProcessRun>> runs;
    {
        std::lock_guard lock(g_runs_mutex);
        runs.swap(g_runs);
    }
    for (const auto& run : runs) run->abort_at_stop();
}

void detail::start_process(Command command, std::shared_ptr<ProcessCompletion> completion) {
    launch(std::move(command), std::move(completion));
}

RunningProcess run_process(Command command, ProcessCallback done) {
    struct CallbackCompletion : detail::ProcessCompletion {
        explicit CallbackCompletion(ProcessCallback d) : done(std::move(d)) {}
        ProcessCallback done;
        void complete(error_code ec, ProcessResult result) override {
            if (done) done(ec, std::move(result));
        }
    };
    auto run = launch(std::move(command), std::make_shared<CallbackCompletion>(std::move(done)));
    auto state = std::make_shared<RunningProcess::State>();
    state->run = run;
    return RunningProcess(std::move(state));
}

Task<ProcessResult> run_process(Command command) {
    co_return co_await async_run_process(std::move(command), asio::use_awaitable);
}

pid_t spawn_process(const std::vector<std::string>& argv) {
    worker_loop("spawn_process");  // throws when no App runs
    pid_t pid = -1;
    error_code ec = spawn(argv, nullptr, {}, Stdio{}, pid);
    if (ec) {
        throw std::system_error(ec.value(), std::generic_category(),
                                argv.empty() ? std::string("spawn_process") : argv[0]);
    }
    adopt_child(pid);
    return pid;
}

void adopt_child(pid_t pid) {
    ChildReaper* reaper = ChildReaper::current();
    if (reaper == nullptr) throw std::logic_error("adopt_child: no App is running");
    if (reaper->io().get_executor().running_in_this_thread()) return reaper->adopt(pid);
    asio::post(reaper->io(), [pid] {
        if (ChildReaper* reaper = ChildReaper::current()) reaper->adopt(pid);
    });
}

}  // namespace prefork

#include "binary_check.hpp"

#include "exit_status.hpp"
#include "signals_blocked.hpp"

#include <prefork/common/inherited_fds.hpp>
#include <prefork/common/unique_fd.hpp>

#include <boost/asio/post.hpp>
#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace prefork::master {
namespace bp = boost::process;
namespace {

constexpr std::size_t kOutputKept = 4096;

// Between fork and exec (async-signal-safe calls only): /dev/null in, the pipe out, the
// default signal dispositions and an empty mask (see SignalsBlocked), nothing else open.
struct CheckDescriptors : bp::extend::handler {
    int dev_null;
    int output;

    template <class Executor>
    void on_exec_setup(Executor& executor) const {
        if (::dup2(dev_null, STDIN_FILENO) < 0 || ::dup2(output, STDOUT_FILENO) < 0 ||
            ::dup2(output, STDERR_FILENO) < 0) {
            executor.set_error(std::error_code(errno, std::system_category()), "dup2");
        }
        restore_default_signals();
        mark_close_on_exec_from(3);
    }
};

// The last line that says something: what a check that failed gives as its reason.
std::string last_line(const std::string& text) {
    std::size_t end = text.find_last_not_of(" \n\r\t");
    if (end == std::string::npos) return {};
    std::size_t start = text.rfind('\n', end);
    start = start == std::string::npos ? 0 : start + 1;
    return text.substr(start, end + 1 - start);
}

}  // namespace

BinaryCheck::BinaryCheck(boost::asio::io_context& io, std::string path,
                         std::vector<std::string> args, int upgrade_state_format,
                         std::chrono::milliseconds limit, Done done)
    : io_(io),
      path_(std::move(path)),
      upgrade_state_format_(upgrade_state_format),
      limit_(limit),
      done_(std::move(done)),
      output_(io),
      deadline_(io) {
    start(args);
}

BinaryCheck::~BinaryCheck() {
    if (pid_ > 0 && !exited_ && !killed_) ::kill(pid_, SIGKILL);  // the master reaps it
}

void BinaryCheck::start(const std::vector<std::string>& args) {
    struct stat status {};
    if (::stat(path_.c_str(), &status) != 0) {
        return finish({false, {}, path_ + ": " + std::strerror(errno)});
    }
    if (!S_ISREG(status.st_mode) || ::access(path_.c_str(), X_OK) != 0) {
        return finish({false, {}, path_ + " is not an executable file"});
    }
    device_ = status.st_dev;
    inode_ = status.st_ino;
    int pipe_ends[2];
    if (::pipe2(pipe_ends, O_CLOEXEC) != 0) {
        return finish({false, {}, std::string("pipe: ") + std::strerror(errno)});
    }
    UniqueFd read_end(pipe_ends[0]), write_end(pipe_ends[1]);
    UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!dev_null) return finish({false, {}, std::string("/dev/null: ") + std::strerror(errno)});
    std::error_code ec;
    bp::child child = [&] {
        SignalsBlocked blocked;
        return bp::child(bp::exe = path_, bp::args = args,
                         CheckDescriptors{{}, dev_null.get(), write_end.get()}, ec);
    }();
    if (ec) return finish({false, {}, path_ + ": " + ec.message()});
    pid_ = child.id();
    child.detach();
    output_.assign(read_end.release());
    read_output();
    deadline_.expires_after(limit_);
    deadline_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code e) {
        if (alive.expired() || e || !done_) return;
        if (!exited_) {  // reaped, its pid may be another process's by now
            ::kill(pid_, SIGKILL);
            killed_ = true;
        }
        char limit[32];
        std::snprintf(limit, sizeof(limit), "%gs", std::chrono::duration<double>(limit_).count());
        finish({false, {}, path_ + " --check did not answer within " + limit});
    });
}

void BinaryCheck::read_output() {
    output_.async_read_some(
        boost::asio::buffer(buffer_),
        [this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec, std::size_t n) {
            if (alive.expired() || ec == boost::asio::error::operation_aborted) return;
            said_.append(buffer_, n);  // the last few KB: the verdict is at the end
            if (said_.size() > kOutputKept) said_.erase(0, said_.size() - kOutputKept);
            if (ec) {  // end of file: every copy of the write end is closed
                output_ended_ = true;
                return finish_if_done();
            }
            read_output();
        });
}

void BinaryCheck::exited(int wait_status) {
    exited_ = true;
    wait_status_ = wait_status;
    finish_if_done();
}

void BinaryCheck::finish_if_done() {
    if (!exited_ || !output_ended_ || !done_) return;
    std::string line = last_line(said_);
    if (WIFEXITED(wait_status_) && WEXITSTATUS(wait_status_) == 0) {
        // A prefork that can take over says so, with the upgrade state formats it reads.
        constexpr std::string_view kValid = ": the configuration is valid";
        constexpr std::string_view kFormats = "upgrade state formats: ";
        std::string version;
        int oldest = 0, newest = 0;
        std::istringstream lines(said_);
        for (std::string text; std::getline(lines, text);) {
            if (text.starts_with("prefork ") && text.ends_with(kValid)) {
                version = text.substr(0, text.size() - kValid.size());
            } else if (text.starts_with(kFormats)) {
                std::sscanf(text.c_str() + kFormats.size(), "%d to %d", &oldest, &newest);
            }
        }
        if (version.empty()) {
            return finish({false,
                           {},
                           path_ + " --check exited 0 without saying that the configuration is "
                                   "valid (not a prefork binary?)"});
        }
        if (oldest < 1 || oldest > upgrade_state_format_ || newest < upgrade_state_format_) {
            return finish({false,
                           {},
                           version + " at " + path_ +
                               " cannot take over from this master (it reads no upgrade state "
                               "of format " +
                               std::to_string(upgrade_state_format_) +
                               "); restart prefork instead"});
        }
        return finish({true, version, {}, device_, inode_});
    }
    std::string reason = path_ + " --check " + describe_wait_status(wait_status_);
    if (!line.empty()) reason += ": " + line;
    finish({false, {}, reason});
}

// Always later, on the loop: the owner may destroy this object from `done`.
void BinaryCheck::finish(Result result) {
    if (!done_) return;
    boost::system::error_code ignored;
    deadline_.cancel();
    output_.close(ignored);
    boost::asio::post(io_, [done = std::exchange(done_, nullptr), result = std::move(result),
                            alive = std::weak_ptr<int>(alive_)]() mutable {
        if (!alive.expired()) done(std::move(result));
    });
}

}  // namespace prefork::master

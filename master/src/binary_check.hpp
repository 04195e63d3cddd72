#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace prefork::master {

// Runs a new prefork binary with --check (and the master's own arguments) before an
// upgrade execs it: a child that gets /dev/null as stdin, a pipe as stdout and stderr,
// nothing else, and `limit` to answer. It passes when the binary exits 0 saying that the
// configuration is valid and that it reads upgrade states of `upgrade_state_format` (the
// format this master writes). The master's reaper passes the child's exit on (exited()),
// since it reaps every child.
class BinaryCheck {
  public:
    struct Result {
        bool passed = false;
        std::string version;  // "prefork 1.2.0" as the binary said it, when it passed
        std::string reason;   // one line, when it did not
        // The file that was checked (stat's st_dev, st_ino), for the exec to be sure it runs
        // the same one.
        dev_t device = 0;
        ino_t inode = 0;
    };
    using Done = std::function<void(Result)>;

    // Calls `done` once, later (never from within the constructor).
    BinaryCheck(boost::asio::io_context& io, std::string path, std::vector<std::string> args,
                int upgrade_state_format, std::chrono::milliseconds limit, Done done);
    ~BinaryCheck();
    BinaryCheck(const BinaryCheck&) = delete;
    BinaryCheck& operator=(const BinaryCheck&) = delete;

    pid_t pid() const { return pid_; }
    // The child has ended with `wait_status` (waitpid's).
    void exited(int wait_status);

  private:
    void start(const std::vector<std::string>& args);
    void read_output();
    void finish_if_done();
    void finish(Result result);

    boost::asio::io_context& io_;
    std::string path_;
    int upgrade_state_format_;
    std::chrono::milliseconds limit_;
    Done done_;
    pid_t pid_ = 0;
    boost::asio::posix::stream_descriptor output_;
    boost::asio::steady_timer deadline_;
    std::string said_;  // its stdout and stderr, the last few KB
    char buffer_[1024];
    bool output_ended_ = false;
    bool exited_ = false;
    bool killed_ = false;  // at the deadline
    dev_t device_ = 0;
    ino_t inode_ = 0;
    int wait_status_ = 0;
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace prefork::master

#include <prefork/subprocess.hpp>

#include "child_reaper.hpp"

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/search_path.hpp>

#include <signal.h>

#include <stdexcept>

namespace prefork {
namespace bp = boost::process;

namespace {

// Between fork and exec: the worker ignores SIGPIPE; the program should not inherit that.
struct DefaultSignals : bp::extend::handler {
    template <class Executor>
    void on_exec_setup(Executor&) const {
        ::signal(SIGPIPE, SIG_DFL);
    }
};

}  // namespace

pid_t spawn_process(const std::vector<std::string>& argv) {
    ChildReaper* reaper = ChildReaper::current();
    if (reaper == nullptr)
        throw std::logic_error("spawn_process: no App is running on this thread");
    if (argv.empty()) throw std::runtime_error("spawn_process: empty command");

    boost::filesystem::path program = argv[0];
    if (argv[0].find('/') == std::string::npos) {
        program = bp::search_path(argv[0]);
        if (program.empty()) throw std::runtime_error(argv[0] + ": command not found on PATH");
    }
    std::vector<std::string> args(argv.begin() + 1, argv.end());
    std::error_code ec;
    bp::child child(bp::exe = program, bp::args = args, DefaultSignals{}, ec);
    if (ec) throw std::runtime_error(argv[0] + ": " + ec.message());
    pid_t pid = child.id();
    child.detach();
    reaper->adopt(pid);
    return pid;
}

}  // namespace prefork

namespace prefork {

void adopt_child(pid_t pid) {
    ChildReaper* reaper = ChildReaper::current();
    if (reaper == nullptr) throw std::logic_error("adopt_child: no App is running on this thread");
    reaper->adopt(pid);
}

}  // namespace prefork

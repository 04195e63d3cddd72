#include "hang_report.hpp"

#include "signals_blocked.hpp"

#include <prefork/common/requests_in_flight.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>

#include <cxxabi.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace prefork::master {
namespace {

constexpr int kMaxFrames = 64;
constexpr std::uint64_t kMaxRequests = 10'000;  // walked; a longer list is taken for damaged
constexpr std::size_t kRequestsShown = 50;
constexpr std::size_t kTargetShown = 512;
constexpr std::size_t kNameShown = 600;  // of a function: template names run to kilobytes
constexpr std::string_view kEndOfReport = "end of report";
constexpr std::size_t kReportLimit = 256 * 1024;

std::string system_error(const char* call) {
    return std::string(call) + ": " + std::strerror(errno);
}

// --- the stack --------------------------------------------------------------------------

std::string demangle(const char* symbol) {
    std::string name(symbol);
    name = name.substr(0, name.find('@'));  // clock_nanosleep@GLIBC_2.2.5
    int status = 0;
    char* readable = abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status);
    if (readable == nullptr) return name;
    name = readable;
    std::free(readable);
    return name;
}

std::string base_name(const char* path) {
    if (path == nullptr) return "?";
    const char* slash = std::strrchr(path, '/');
    return slash != nullptr ? slash + 1 : path;
}

std::string hex(std::uint64_t value) {
    char text[24];
    std::snprintf(text, sizeof text, "%#llx", static_cast<unsigned long long>(value));
    return text;
}

// "#2 (anonymous namespace)::block(long)+0x1e in prefork-demo at main.cpp:58"
std::string describe_frame(Dwfl* dwfl, int number, Dwarf_Addr pc, bool activation) {
    // A return address is the instruction after the call: the call's line is the one before.
    Dwarf_Addr at = activation ? pc : pc - 1;
    std::string line = "stack #" + std::to_string(number) + " ";
    Dwfl_Module* module = dwfl_addrmodule(dwfl, at);
    if (module == nullptr) return line + "?? at " + hex(pc);
    Dwarf_Addr start = 0;
    const char* path = nullptr;
    const char* name =
        dwfl_module_info(module, nullptr, &start, nullptr, nullptr, nullptr, &path, nullptr);
    GElf_Off offset = 0;
    GElf_Sym symbol;
    const char* function =
        dwfl_module_addrinfo(module, at, &offset, &symbol, nullptr, nullptr, nullptr);
    std::string file = base_name(path != nullptr ? path : name);
    if (function == nullptr) return line + "?? in " + file + "+" + hex(pc - start);
    std::string readable = demangle(function);
    if (readable.size() > kNameShown) readable = readable.substr(0, kNameShown) + "...";
    line += readable + "+" + hex(offset + (pc - at)) + " in " + file;
    if (Dwfl_Line* source = dwfl_module_getsrc(module, at)) {
        int number_in_file = 0;
        const char* source_file =
            dwfl_lineinfo(source, nullptr, &number_in_file, nullptr, nullptr, nullptr);
        if (source_file != nullptr && number_in_file > 0) {
            line += " at " + base_name(source_file) + ":" + std::to_string(number_in_file);
        }
    }
    return line;
}

struct Unwinding {
    Dwfl* dwfl;
    std::vector<std::string>* lines;
    int frames = 0;
};

int on_frame(Dwfl_Frame* frame, void* argument) {
    auto& unwinding = *static_cast<Unwinding*>(argument);
    Dwarf_Addr pc = 0;
    bool activation = false;
    if (!dwfl_frame_pc(frame, &pc, &activation)) return DWARF_CB_ABORT;
    unwinding.lines->push_back(describe_frame(unwinding.dwfl, unwinding.frames, pc, activation));
    return ++unwinding.frames < kMaxFrames ? DWARF_CB_OK : DWARF_CB_ABORT;
}

// The thread must be stopped under our ptrace already.
void read_stack(pid_t pid, std::vector<std::string>& lines) {
    static char* debuginfo_path = nullptr;
    static const Dwfl_Callbacks callbacks = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .section_address = nullptr,
        .debuginfo_path = &debuginfo_path,
    };
    Dwfl* dwfl = dwfl_begin(&callbacks);
    if (dwfl == nullptr) {
        lines.push_back(std::string("cannot read its stack: libdw: ") + dwfl_errmsg(-1));
        return;
    }
    Unwinding unwinding{dwfl, &lines};
    if (dwfl_linux_proc_report(dwfl, pid) != 0 || dwfl_report_end(dwfl, nullptr, nullptr) != 0) {
        lines.push_back(std::string("cannot read its stack: reading its mappings: ") +
                        dwfl_errmsg(-1));
    } else if (dwfl_linux_proc_attach(dwfl, pid, true) != 0) {
        lines.push_back(std::string("cannot read its stack: libdw: ") + dwfl_errmsg(-1));
    } else if (dwfl_getthread_frames(dwfl, pid, on_frame, &unwinding) != 0 &&
               unwinding.frames == 0) {
        lines.push_back(std::string("cannot read its stack: unwinding: ") + dwfl_errmsg(-1));
    }
    dwfl_end(dwfl);
}

// --- the requests in flight ---------------------------------------------------------------

bool read_memory(pid_t pid, std::uint64_t address, void* into, std::size_t size) {
    iovec local{into, size};
    iovec remote{reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), size};
    return ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

// Printable ASCII only: the bytes come from a client.
std::string read_text(pid_t pid, const char* address, std::uint64_t size, std::size_t shown) {
    std::string text(std::min<std::uint64_t>(size, shown), '\0');
    if (!read_memory(pid, reinterpret_cast<std::uintptr_t>(address), text.data(), text.size())) {
        return "?";
    }
    for (char& c : text) {
        if (c < 0x20 || c > 0x7e) c = '?';
    }
    if (size > shown) text += "...";
    return text;
}

std::string seconds_text(std::int64_t ns) {
    if (ns < 0) return "?s";
    char text[32];
    std::snprintf(text, sizeof text, "%.3fs", static_cast<double>(ns) / 1e9);
    return text;
}

void read_requests(pid_t pid, std::uint64_t address, std::vector<std::string>& lines) {
    if (address == 0) return;  // a worker that does not say where they are
    in_flight::Table table;
    if (!read_memory(pid, address, &table, sizeof table)) {
        lines.push_back("cannot read its requests in flight: " + system_error("process_vm_readv"));
        return;
    }
    if (table.magic != in_flight::kMagic || table.version != in_flight::kVersion) {
        lines.push_back("cannot read its requests in flight: their table is of another version");
        return;
    }
    timespec now_ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &now_ts);
    std::int64_t now = std::int64_t{now_ts.tv_sec} * 1'000'000'000 + now_ts.tv_nsec;

    std::vector<std::pair<std::int64_t, std::string>> requests;  // age, "GET /path"
    const in_flight::Record* next = table.first;
    for (std::uint64_t i = 0; next != nullptr && i < kMaxRequests; ++i) {
        in_flight::Record record;
        if (!read_memory(pid, reinterpret_cast<std::uintptr_t>(next), &record, sizeof record)) {
            lines.push_back("cannot read all its requests in flight: " +
                            system_error("process_vm_readv"));
            break;
        }
        // A record read while it was being written could hold anything.
        std::int64_t age =
            record.started_ns > 0 && record.started_ns <= now ? now - record.started_ns : -1;
        requests.emplace_back(age,
                              read_text(pid, record.method, record.method_size, 32) + " " +
                                  read_text(pid, record.target, record.target_size, kTargetShown));
        next = record.next;
    }
    if (requests.empty()) {
        lines.push_back("no request in flight");
        return;
    }
    std::stable_sort(requests.begin(), requests.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (std::size_t i = 0; i < requests.size() && i < kRequestsShown; ++i) {
        lines.push_back("request in flight for " + seconds_text(requests[i].first) + ": " +
                        requests[i].second);
    }
    if (requests.size() > kRequestsShown) {
        lines.push_back("and " + std::to_string(requests.size() - kRequestsShown) +
                        " more requests in flight");
    }
}

// --- holding the thread still -----------------------------------------------------------

// The TracerPid of /proc/PID/status: a debugger already attached (0: none).
pid_t tracer_of(pid_t pid) {
    int fd = ::open(("/proc/" + std::to_string(pid) + "/status").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[4096];
    ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    const char* field = std::strstr(text, "\nTracerPid:");
    return field != nullptr ? std::atoi(field + 11) : 0;
}

// Stops the thread (PTRACE_SEIZE, then PTRACE_INTERRUPT) and says which signal to give
// back when it goes on: one that arrived meanwhile is the process's, not ours. Once seized,
// the thread is let go by HeldThread's destructor, whatever happens in between.
bool stop_thread(pid_t pid, int& pending_signal, std::vector<std::string>& lines) {
    if (::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) {
        std::string why = system_error("ptrace(PTRACE_SEIZE)");
        if (errno == EPERM) {
            pid_t tracer = tracer_of(pid);
            why += tracer > 0 ? " (process " + std::to_string(tracer) + " traces it already)"
                              : " (ptrace is not allowed here: a seccomp policy, or Yama's "
                                "ptrace_scope at 2 or 3)";
        }
        lines.push_back("cannot read its stack: " + why);
        return false;
    }
    if (::ptrace(PTRACE_INTERRUPT, pid, nullptr, nullptr) != 0) {
        lines.push_back("cannot read its stack: " + system_error("ptrace(PTRACE_INTERRUPT)"));
        return false;
    }
    for (;;) {
        int status = 0;
        if (::waitpid(pid, &status, __WALL) < 0) {
            if (errno == EINTR) continue;
            lines.push_back("cannot read its stack: " + system_error("waitpid"));
            return false;
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            lines.push_back("it ended before its stack could be read");
            return false;
        }
        if (WIFSTOPPED(status)) {
            bool our_stop = (status >> 16) == PTRACE_EVENT_STOP;
            pending_signal = our_stop ? 0 : WSTOPSIG(status);
            return true;
        }
    }
}

class HeldThread {
  public:
    HeldThread(pid_t pid, std::vector<std::string>& lines) : pid_(pid) {
        stopped_ = stop_thread(pid, pending_signal_, lines);
    }
    ~HeldThread() {
        // Also after a failure past PTRACE_SEIZE; a no-op when it was never seized.
        ::ptrace(PTRACE_DETACH, pid_, nullptr,
                 reinterpret_cast<void*>(std::intptr_t{pending_signal_}));
    }
    HeldThread(const HeldThread&) = delete;
    HeldThread& operator=(const HeldThread&) = delete;
    bool stopped() const { return stopped_; }

  private:
    pid_t pid_;
    int pending_signal_ = 0;
    bool stopped_ = false;
};

// Each part of the report as soon as it is read: the requests (cheap) first, the stack
// (libdw reads symbol tables) after, so that a report cut short still has the first.
void report_hang(pid_t pid, std::uint64_t requests_in_flight,
                 const std::function<void(std::vector<std::string>&)>& emit) {
    std::vector<std::string> lines;
    HeldThread held(pid, lines);
    if (!held.stopped()) return emit(lines);
    read_requests(pid, requests_in_flight, lines);
    emit(lines);
    read_stack(pid, lines);
    emit(lines);
}

// The whole lines of `text`.
std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
        lines.push_back(text.substr(start, end - start));
    }
    return lines;
}

// --- in the child -----------------------------------------------------------------------

void write_all(int fd, const std::string& text) {
    for (std::size_t at = 0; at < text.size();) {
        ssize_t n = ::write(fd, text.data() + at, text.size() - at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        at += static_cast<std::size_t>(n);
    }
}

[[noreturn]] void report_from_child(int pipe, pid_t worker, std::uint64_t requests_in_flight,
                                    std::chrono::milliseconds limit) {
    restore_default_signals();
    // Nothing of the master's stays open here: the listeners are not ours to hold.
    if (pipe != 3) {
        ::dup2(pipe, 3);
        pipe = 3;
    }
    ::close_range(4, ~0U, 0);
    ::alarm(static_cast<unsigned>(std::max<long long>(1, limit.count() / 1000)));
    // elfutils would ask debuginfod servers over the network for every library.
    ::unsetenv("DEBUGINFOD_URLS");
    auto emit = [pipe](std::vector<std::string>& lines) {
        std::string text;
        for (const auto& line : lines) text += line + '\n';
        write_all(pipe, text);
        lines.clear();
    };
    std::vector<std::string> failed;
    try {
        report_hang(worker, requests_in_flight, emit);
    } catch (const std::exception& e) {
        failed.push_back(std::string("cannot read the rest of its report: ") + e.what());
    } catch (...) {
        failed.push_back("cannot read the rest of its report");
    }
    failed.emplace_back(kEndOfReport);
    emit(failed);
    ::_exit(0);
}

}  // namespace

std::vector<std::string> read_hang_report(pid_t pid, std::uint64_t requests_in_flight) {
    std::vector<std::string> report;
    report_hang(pid, requests_in_flight, [&](std::vector<std::string>& lines) {
        for (auto& line : lines) report.push_back(std::move(line));
        lines.clear();
    });
    return report;
}

HangReport::HangReport(boost::asio::io_context& io, pid_t worker, std::uint64_t requests_in_flight,
                       std::chrono::milliseconds limit, Done done)
    : pipe_(io), deadline_(io), done_(std::move(done)) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        std::vector<std::string> failed{"cannot read its stack: " + system_error("pipe2")};
        boost::asio::post(io, [this, alive = std::weak_ptr<bool>(alive_), failed] {
            if (!alive.expired()) finish(failed);
        });
        return;
    }
    pid_t child;
    int fork_error = 0;
    {
        SignalsBlocked blocked;  // until the child has the default dispositions back
        child = ::fork();
        if (child == 0) report_from_child(fds[1], worker, requests_in_flight, limit);
        fork_error = errno;
    }
    ::close(fds[1]);
    pipe_.assign(fds[0]);
    if (child > 0) child_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, child, 0)));
    if (child < 0) {
        errno = fork_error;
        std::vector<std::string> failed{"cannot read its stack: " + system_error("fork")};
        boost::asio::post(io, [this, alive = std::weak_ptr<bool>(alive_), failed] {
            if (!alive.expired()) finish(failed);
        });
        return;
    }
    // The child ends itself at the limit (alarm); this one is for a child that cannot.
    deadline_.expires_after(limit + std::chrono::milliseconds(500));
    deadline_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
        if (ec || alive.expired()) return;
        std::vector<std::string> lines = lines_of(text_);
        lines.push_back("the rest of its report did not come in time");
        finish(std::move(lines));
    });
    do_read();
}

// A child still reading lets the worker go when it dies (the kernel detaches it).
HangReport::~HangReport() {
    end_child();
}

void HangReport::end_child() {
    if (child_) ::syscall(SYS_pidfd_send_signal, child_.get(), SIGKILL, nullptr, 0);
    child_.reset();
}

void HangReport::do_read() {
    pipe_.async_read_some(
        boost::asio::buffer(buffer_),
        [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec, std::size_t n) {
            if (alive.expired() || !done_) return;
            text_.append(buffer_, n);
            if (!ec && text_.size() < kReportLimit) return do_read();
            std::vector<std::string> lines = lines_of(text_);
            if (!lines.empty() && lines.back() == kEndOfReport) {
                lines.pop_back();
            } else {
                lines.push_back(text_.size() >= kReportLimit
                                    ? "the rest of its report is left out: too long"
                                    : "the rest of its report did not come: its reader ended");
            }
            finish(std::move(lines));
        });
}

// Once; `done` may destroy this object, so nothing here is touched after it.
void HangReport::finish(std::vector<std::string> lines) {
    if (!done_) return;
    deadline_.cancel();
    boost::system::error_code ignored;
    pipe_.close(ignored);
    end_child();
    Done done = std::move(done_);
    done_ = nullptr;
    done(std::move(lines));
}

}  // namespace prefork::master

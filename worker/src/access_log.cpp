#include "access_log.hpp"

#include <prefork/common/log.hpp>
#include <prefork/common/log_output.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace prefork {
namespace {

std::string quoted(std::string_view text) {
    return boost::json::serialize(boost::json::string(text));
}

}  // namespace

AccessLog::AccessLog(std::string target) : path_(std::move(target)) {
    enabled_ = !path_.empty() && path_ != "off";
    if (enabled_ && path_ != "-") reopen();
}

void AccessLog::reopen() {
    if (!enabled_ || path_ == "-") return;
    UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) {
        log::error("open(", path_, ") for the access log: ", std::strerror(errno));
        return;  // keep writing to the old file, if any
    }
    file_ = std::move(fd);
}

namespace {

std::string access_line(std::string_view client, std::string_view method, std::string_view target,
                        unsigned status, std::uint64_t bytes, const char* ms_text) {
    if (log::format() == log::Format::json) {
        return "{\"time\":\"" + log::timestamp() +
               "\",\"level\":\"info\",\"role\":\"worker\",\"pid\":" + std::to_string(::getpid()) +
               ",\"type\":\"access\",\"client\":" + quoted(client) +
               ",\"method\":" + quoted(method) + ",\"path\":" + quoted(target) +
               ",\"status\":" + std::to_string(status) + ",\"bytes\":" + std::to_string(bytes) +
               ",\"duration_ms\":" + ms_text + "}\n";
    }
    return log::timestamp() + " info worker[" + std::to_string(::getpid()) + "] access " +
           std::string(client) + " \"" + std::string(method) + " " + std::string(target) + "\" " +
           std::to_string(status) + " " + std::to_string(bytes) + " " + ms_text + "ms\n";
}

}  // namespace

void AccessLog::write(std::string_view client, std::string_view method, std::string_view target,
                      unsigned status, std::uint64_t bytes,
                      std::chrono::steady_clock::duration duration) {
    double ms = std::chrono::duration<double, std::milli>(duration).count();
    char ms_text[32];
    std::snprintf(ms_text, sizeof(ms_text), "%.3f", ms);
    std::string line = access_line(client, method, target, status, bytes, ms_text);
    // A line longer than a pipe takes whole (a 16 KiB target) has its target cut.
    for (std::size_t cut = line.size() - std::min(line.size(), log::kMaxLine); cut > 0; cut *= 2) {
        std::size_t keep = target.size() > cut ? target.size() - cut : 0;
        line = access_line(client, method, log::cut_to(target, keep), status, bytes, ms_text);
        if (line.size() <= log::kMaxLine || keep == 0) break;
    }
    if (file_) return log::write_line(file_.get(), line);
    log::LogOutput::write(std::move(line));
}

}  // namespace prefork

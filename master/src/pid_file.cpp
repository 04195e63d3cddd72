#include "pid_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace prefork::master {

PidFile& PidFile::operator=(PidFile&& other) noexcept {
    if (this != &other) {
        if (!path_.empty()) ::unlink(path_.c_str());
        path_ = std::exchange(other.path_, {});
    }
    return *this;
}

PidFile::~PidFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
}

PidFile PidFile::create(const std::string& path) {
    PidFile file;
    if (path.empty()) return file;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw std::runtime_error("cannot write pid file " + path + ": " + std::strerror(errno));
    std::string text = std::to_string(::getpid()) + "\n";
    bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!written) throw std::runtime_error("cannot write pid file " + path);
    file.path_ = path;
    return file;
}

}  // namespace prefork::master

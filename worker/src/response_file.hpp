#pragma once

#include <cstdint>

#include <unistd.h>

namespace prefork::detail {

// An open file that is a response's body (Response::file); closed with the last response
// that refers to it.
struct ResponseFile {
    ResponseFile(int fd, std::uint64_t size) : fd(fd), size(size) {}
    ResponseFile(const ResponseFile&) = delete;
    ResponseFile& operator=(const ResponseFile&) = delete;
    ~ResponseFile() { ::close(fd); }

    int fd;
    std::uint64_t size;
};

}  // namespace prefork::detail

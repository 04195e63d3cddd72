#pragma once

#include <string>
#include <utility>

namespace prefork::master {

// The master's pid in a file, removed when prefork stops.
class PidFile {
  public:
    PidFile() = default;
    PidFile(PidFile&& other) noexcept : path_(std::exchange(other.path_, {})) {}
    PidFile& operator=(PidFile&& other) noexcept;
    ~PidFile();

    // Writes the pid to `path` (nothing when path is empty); throws std::runtime_error
    // naming the file when it cannot be written.
    static PidFile create(const std::string& path);

  private:
    std::string path_;
};

}  // namespace prefork::master

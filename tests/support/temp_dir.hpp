#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace prefork::testing {

// A directory of its own under /tmp for one test, removed with all it holds when the test
// is over (passed or failed).
class TempDir {
  public:
    // `open_to_everyone`: mode 0755, for what an unprivileged user must reach (mkdtemp's
    // 0700 otherwise).
    explicit TempDir(const std::string& prefix = "prefork-test", bool open_to_everyone = false) {
        std::string pattern = "/tmp/" + prefix + "-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
        if (open_to_everyone) {
            namespace fs = std::filesystem;
            fs::permissions(path_, fs::perms::owner_all | fs::perms::group_read |
                                       fs::perms::group_exec | fs::perms::others_read |
                                       fs::perms::others_exec);
        }
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::string& path() const { return path_; }
    std::string path(const std::string& name) const { return path_ + "/" + name; }

    // Writes `name` in one step (a new file renamed over the old), as a deployment tool
    // would: a process that reads it never sees half of it. Returns its path.
    std::string write(const std::string& name, const std::string& text) const {
        std::string target = path(name);
        std::ofstream(target + ".new") << text;
        std::filesystem::rename(target + ".new", target);
        return target;
    }

  private:
    std::string path_;
};

}  // namespace prefork::testing

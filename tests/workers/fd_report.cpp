// Writes the descriptors this process holds, one "N -> target" line each, to the file
// named by its argument (written whole: a temporary file renamed into place), or to stdout.
// Started by process_worker through each way of starting a process, to show what a
// process started from a handler inherits.

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return 1;
    std::string listing;
    while (dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.') continue;
        int fd = std::atoi(entry->d_name);
        if (fd == ::dirfd(dir)) continue;  // the listing's own
        char target[4096];
        std::string path = std::string("/proc/self/fd/") + entry->d_name;
        ssize_t n = ::readlink(path.c_str(), target, sizeof target - 1);
        target[n < 0 ? 0 : n] = '\0';
        listing += std::to_string(fd) + " -> " + target + "\n";
    }
    ::closedir(dir);
    if (argc < 2) return std::fputs(listing.c_str(), stdout) < 0 ? 1 : 0;
    std::string temporary = std::string(argv[1]) + ".tmp";
    int out = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return 1;
    bool written =
        ::write(out, listing.data(), listing.size()) == static_cast<ssize_t>(listing.size());
    ::close(out);
    return written && ::rename(temporary.c_str(), argv[1]) == 0 ? 0 : 1;
}

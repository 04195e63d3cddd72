// Stands in for a prefork binary that takes a moment to start (a cold disk, a large binary):
// run with --check it answers at once, as prefork-next; otherwise it waits a second first.
// Meanwhile the signal mask and the pending signals are as the exec left them, and they
// cross the exec into prefork-next, as they would into a slow prefork.

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    bool check = false;
    for (int i = 1; i < argc; ++i) check = check || std::strcmp(argv[i], "--check") == 0;
    if (!check) {
        timespec second{1, 0};
        while (::nanosleep(&second, &second) != 0) {
        }
    }
    ::execv(PREFORK_NEXT_BINARY, argv);
    std::perror("execv " PREFORK_NEXT_BINARY);
    return 127;
}

#include "fork_guard.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace prefork::fork_guard {
namespace {

constexpr std::size_t kBitsPerWord = 64;
constexpr std::size_t kMaxTrackedFds = 1 << 20;

// One bit per descriptor number, allocated once at install() and never freed, so the
// child handler reads it without allocating or locking.
std::atomic<std::uint64_t>* g_bits = nullptr;
std::size_t g_words = 0;

void close_registered_in_child() {
    for (std::size_t word = 0; word < g_words; ++word) {
        std::uint64_t bits = g_bits[word].load(std::memory_order_relaxed);
        while (bits != 0) {
            int bit = __builtin_ctzll(bits);
            bits &= bits - 1;
            ::close(static_cast<int>(word * kBitsPerWord + static_cast<std::size_t>(bit)));
        }
        g_bits[word].store(0, std::memory_order_relaxed);
    }
}

std::size_t tracked_fds() {
    rlimit limit{};
    std::size_t fds = kMaxTrackedFds;
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        fds = std::min<std::size_t>(limit.rlim_cur, kMaxTrackedFds);
    }
    return fds;
}

}  // namespace

void install() {
    static std::once_flag once;
    std::call_once(once, [] {
        g_words = (tracked_fds() + kBitsPerWord - 1) / kBitsPerWord;
        g_bits = new std::atomic<std::uint64_t>[g_words]();  // lives as long as the process
        ::pthread_atfork(nullptr, nullptr, &close_registered_in_child);
    });
}

void add(int fd) {
    if (g_bits == nullptr || fd < 0 || static_cast<std::size_t>(fd) >= g_words * kBitsPerWord)
        return;
    g_bits[fd / kBitsPerWord].fetch_or(std::uint64_t{1} << (fd % kBitsPerWord),
                                       std::memory_order_relaxed);
}

void remove(int fd) {
    if (g_bits == nullptr || fd < 0 || static_cast<std::size_t>(fd) >= g_words * kBitsPerWord)
        return;
    g_bits[fd / kBitsPerWord].fetch_and(~(std::uint64_t{1} << (fd % kBitsPerWord)),
                                        std::memory_order_relaxed);
}

}  // namespace prefork::fork_guard

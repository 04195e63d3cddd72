#include "offload_pool.hpp"

#include <prefork/task.hpp>

#include <prefork/common/log.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace prefork {
namespace {

constexpr int kDefaultOffloadThreads = 4;

// Started at the first offload(), so a worker that never offloads has no thread besides
// its loop. Usually the loop's thread starts it, but an offload() from a coroutine of
// another thread may race it: the pointer is atomic and the start is under a lock.
std::atomic<boost::asio::thread_pool*> g_pool{nullptr};
std::mutex g_pool_start;

int offload_threads() {
    const char* text = std::getenv("PREFORK_OFFLOAD_THREADS");
    int threads = text ? std::atoi(text) : kDefaultOffloadThreads;
    if (threads < 1 || threads > 1024) {
        log::warning("PREFORK_OFFLOAD_THREADS=", text, " is not from 1 to 1024; using ",
                     kDefaultOffloadThreads);
        threads = kDefaultOffloadThreads;
    }
    return threads;
}

}  // namespace

boost::asio::thread_pool::executor_type offload_executor() {
    boost::asio::thread_pool* pool = g_pool.load(std::memory_order_acquire);
    if (pool == nullptr) {
        std::lock_guard lock(g_pool_start);
        pool = g_pool.load(std::memory_order_relaxed);
        if (pool == nullptr) {
            pool = new boost::asio::thread_pool(offload_threads());
            g_pool.store(pool, std::memory_order_release);
        }
    }
    return pool->get_executor();
}

void stop_offload_pool() {
    std::lock_guard lock(g_pool_start);
    std::unique_ptr<boost::asio::thread_pool> pool(g_pool.exchange(nullptr));
    if (!pool) return;
    pool->stop();
    pool->join();
}

}  // namespace prefork

#include "offload_pool.hpp"

#include <prefork/task.hpp>

#include <prefork/common/log.hpp>

#include <cstdlib>
#include <memory>

namespace prefork {
namespace {

constexpr int kDefaultOffloadThreads = 4;

// Started by the loop's thread at the first offload(), so a worker that never offloads
// has no thread besides its loop.
std::unique_ptr<boost::asio::thread_pool> g_pool;

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

namespace detail {

boost::asio::thread_pool::executor_type offload_executor() {
    if (!g_pool) g_pool = std::make_unique<boost::asio::thread_pool>(offload_threads());
    return g_pool->get_executor();
}

}  // namespace detail

void stop_offload_pool() {
    if (!g_pool) return;
    g_pool->stop();
    g_pool->join();
    g_pool.reset();
}

}  // namespace prefork

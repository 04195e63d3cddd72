#pragma once

#include <cstdint>

// A worker's requests in flight, kept where the master can read them out of a hung worker's
// memory (process_vm_readv, while ptrace holds its loop thread stopped) without any code
// running in the worker. The layout is a contract between a master and the workers it
// starts, which may be of another build: plain data, fixed widths, a version to check.
namespace prefork::in_flight {

inline constexpr std::uint32_t kMagic = 0x70726671;  // "prfq"
inline constexpr std::uint32_t kVersion = 1;

// One request, from its parsed head to its response's last byte (or its connection's end).
// The method and target point into strings that the request's connection owns.
struct Record {
    Record* next = nullptr;
    Record* previous = nullptr;
    std::int64_t started_ns = 0;  // CLOCK_MONOTONIC: the same clock in every process
    const char* method = nullptr;
    std::uint64_t method_size = 0;
    const char* target = nullptr;
    std::uint64_t target_size = 0;
};

// The list of a worker's records, the newest first. Its address goes to the master in the
// worker's Ready message.
struct Table {
    std::uint32_t magic = kMagic;
    std::uint32_t version = kVersion;
    Record* first = nullptr;
    std::uint64_t count = 0;
};

}  // namespace prefork::in_flight

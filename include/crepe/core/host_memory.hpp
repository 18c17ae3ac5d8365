#pragma once
// Host-memory hygiene for long streamed runs.
//
// main() keeps freed blocks in the heap for reuse (src/main.cpp: mmap and trim thresholds of 1 GiB),
// which makes every batch's allocations cheap but lets heap fragmentation ratchet the resident set
// up block after block (measured: +5.4 MiB per block on a width-1024 model). Between blocks, once a
// block's weights are gone, the free pages are handed back.
#include <cstdint>
#include <optional>

namespace crepe {

// Returns the heap's free pages to the system (glibc's malloc_trim); a no-op elsewhere.
void release_free_host_memory();

// Memory the system could give this process now without swapping: Linux's MemAvailable (which
// counts reclaimable page cache), or less when a container's memory limit leaves less (cgroup limit
// minus usage); nullopt where unknown.
std::optional<int64_t> available_host_memory();

}  // namespace crepe

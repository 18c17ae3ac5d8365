// release_free_host_memory() hands freed heap pages back: the resident set falls after a
// fragmenting pattern of frees that the allocator alone keeps.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "crepe/core/device.hpp"
#include "crepe/core/host_memory.hpp"

namespace crepe {
namespace {

long resident_bytes() {
  long pages_total = 0, pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  return pages_resident * ::sysconf(_SC_PAGESIZE);
}

TEST(HostMemory, ReleasingFreePagesShrinksAFragmentedHeap) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces the allocator";
#elif !defined(__GLIBC__)
  GTEST_SKIP() << "only glibc's heap is trimmed";
#else
  // 2048 blocks of 64 KiB (below glibc's mmap threshold: they live in the heap); every 16th is kept,
  // so the free space lies between live blocks where trimming the top of the heap cannot reach it.
  constexpr size_t kBlock = 64 << 10, kCount = 2048;
  std::vector<char*> blocks(kCount);
  for (auto& block : blocks) {
    block = static_cast<char*>(std::malloc(kBlock));
    ASSERT_NE(block, nullptr);
    std::memset(block, 1, kBlock);  // resident
  }
  for (size_t i = 0; i < kCount; ++i) {
    if (i % 16 != 0) {
      std::free(blocks[i]);
      blocks[i] = nullptr;
    }
  }
  const long before = resident_bytes();
  release_free_host_memory();
  const long after = resident_bytes();
  // About 120 MiB were freed between live blocks; at least a quarter of the 128 MiB must leave.
  EXPECT_LT(after, before - static_cast<long>(kBlock * kCount / 4)) << before << " -> " << after;
  for (char* block : blocks) std::free(block);
#endif
}

// What the search's auto weight placement reads: some memory is available, never more than the
// machine has, and the CPU device's free memory is the host's.
TEST(HostMemory, AvailableMemoryIsPositiveAndAtMostThePhysicalMemory) {
  const auto available = available_host_memory();
  ASSERT_TRUE(available.has_value()) << "/proc/meminfo has no MemAvailable";
  const long long physical = static_cast<long long>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  EXPECT_GT(*available, 0);
  EXPECT_LE(*available, physical);
  const auto cpu = free_memory(c10::Device(c10::kCPU));
  ASSERT_TRUE(cpu.has_value());
  EXPECT_GT(*cpu, 0);
  EXPECT_LE(*cpu, physical);
}

}  // namespace
}  // namespace crepe

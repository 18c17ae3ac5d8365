#include "crepe/core/host_memory.hpp"

#include <algorithm>
#include <cstdlib>  // defines __GLIBC__ where the C library is glibc
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace crepe {

void release_free_host_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

namespace {

// The first number in `path`; nullopt when absent or not a number ("max": no limit).
std::optional<int64_t> read_number(const char* path) {
  std::ifstream in(path);
  int64_t value = 0;
  if (in >> value && value >= 0) return value;
  return std::nullopt;
}

std::optional<int64_t> meminfo_available() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kib = 0;
    std::string unit;
    if (fields >> kib >> unit && unit == "kB" && kib >= 0) return kib * 1024;
  }
  return std::nullopt;
}

// A container's memory limit less its usage (cgroup v2, else v1), when one is set: MemAvailable
// describes the whole machine, and a process over its cgroup's limit is killed.
std::optional<int64_t> cgroup_headroom() {
  for (const auto& [limit_path, usage_path] :
       {std::pair{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        std::pair{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const auto limit = read_number(limit_path), usage = read_number(usage_path);
    if (limit && usage && *limit < (int64_t{1} << 60)) return std::max<int64_t>(0, *limit - *usage);
  }
  return std::nullopt;
}

}  // namespace

std::optional<int64_t> available_host_memory() {
  const auto machine = meminfo_available(), container = cgroup_headroom();
  if (machine && container) return std::min(*machine, *container);
  return machine ? machine : container;
}

}  // namespace crepe

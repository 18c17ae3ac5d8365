#include "crepe/core/host_memory.hpp"

#include <cstdlib>  // defines __GLIBC__ where the C library is glibc
#include <fstream>
#include <sstream>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace crepe {

void release_free_host_memory() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

std::optional<int64_t> available_host_memory() {
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

}  // namespace crepe

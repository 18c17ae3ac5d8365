#include <malloc.h>
#include <cstdlib>

#include "crepe/cli/app.hpp"

namespace {

// OpenMP workers that finished a parallel region spin for a while before sleeping, and OpenBLAS's
// own threads do the same between matrix products; on a machine with few cores, or one shared with
// other jobs, the two sets of threads steal each other's cores. Measured on 2 busy cores (crepe
// search --proxy kl, 48 evaluations): 62 s wall / 43 s CPU by default, 18 s / 5 s with passive waits.
// libgomp reads the policy when it is loaded, before main(), so it is set from the executable's
// preinit array, which runs before any shared library initializer. A value in the environment wins.
void prefer_passive_openmp_waits(int, char**, char**) { setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0); }
__attribute__((section(".preinit_array"), used)) void (*const kPreinit)(int, char**, char**) = prefer_passive_openmp_waits;

}  // namespace

int main(int argc, char** argv) {
  // crepe allocates and frees tensors of tens to hundreds of MiB per batch. glibc serves those with
  // fresh mmaps and returns them on free, so every batch paid page faults on zeroed pages (measured:
  // 2.7x slower evaluation, most of it system time). Keep large blocks in the heap for reuse instead.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // One arena: worker threads otherwise keep per-thread arenas whose retained blocks grew the
  // resident set with every pruned block (measured on a synthetic 16-block model: +7.8 MiB/block).
  mallopt(M_ARENA_MAX, 1);
  return crepe::cli::run(argc, argv);
}

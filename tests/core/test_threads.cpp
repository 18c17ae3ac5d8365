// crepe's own at::parallel_for regions get every intra-op thread: the build compiles them with
// OpenMP (without it, the fused score and mask kernels would silently run on one thread).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <thread>

#include "crepe/core/threads.hpp"

namespace crepe {
namespace {

TEST(Threads, CrepesKernelsRunOnEveryIntraOpThread) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);  // as `crepe --threads 2`; a one-core machine still runs two threads
  EXPECT_EQ(parallel_kernel_threads(), 2);
  at::set_num_threads(1);
  EXPECT_EQ(parallel_kernel_threads(), 1);
  at::set_num_threads(before);
}

}  // namespace
}  // namespace crepe

#pragma once
// CPU threads for crepe's own kernels.
//
// ATen's at::parallel_for is an inline template: with LibTorch's OpenMP backend (Debian's, and
// PyTorch's wheels) its `#pragma omp parallel` is compiled in the calling translation unit, so a
// build without -fopenmp silently runs crepe's fused kernels (CRePE scores, masks, permutation)
// on one thread while LibTorch's own ops use them all. CMake links OpenMP; this checks it took.
namespace crepe {

// How many threads an at::parallel_for region in crepe's code runs on: at::get_num_threads() in a
// correct build, 1 in one that lost OpenMP.
int parallel_kernel_threads();

}  // namespace crepe

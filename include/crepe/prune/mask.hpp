#pragma once
// From scores to masks. A mask is a bool tensor shaped like the weight, true = kept.
//
// - unstructured, group layer: the floor(sparsity * numel) lowest scores of the matrix are pruned
//   (one threshold per matrix: RIA's and CRePE's default);
// - unstructured, group row: the floor(sparsity * in) lowest of each output row (Wanda's default);
// - N:M: in every row, in each run of M consecutive input columns, the N lowest are pruned (2:4
//   prunes 2 of 4). A tail run of r < M columns (when in is not a multiple of M) prunes
//   floor(N * r / M) of its r: the same proportion, rounded down, so the matrix is never pruned
//   beyond N/M and a tail of one column is left dense.
// Ties are broken deterministically, on every device: among equal scores the lower column (and for
// layer groups the lower flat index) is pruned first. Counts are exact: no threshold ties.
#include <ATen/core/Tensor.h>

#include <string>

namespace crepe::prune {

struct Pattern {
  int64_t n = 0;  // pruned per group; 0 = unstructured
  int64_t m = 0;  // group size
  bool structured() const { return m > 0; }
  std::string str() const;  // "unstructured" or "2:4"
};
// "unstructured" or "N:M" with 0 < N < M; InputError naming `option` otherwise.
Pattern parse_pattern(const std::string& text, const std::string& option = "--pattern");

enum class Group { Layer, Row };
Group parse_group(const std::string& text, const std::string& option = "--group");
const char* group_name(Group group);

struct MaskSpec {
  double sparsity = 0.5;  // unstructured only; N:M fixes its own
  Pattern pattern;
  Group group = Group::Layer;
};

// How a mask is selected. Auto: fused kernels on the CPU (radix selection over a whole matrix or
// per row, pairwise ranks inside N:M groups), whole-tensor ops elsewhere (CUDA). Both select the same mask,
// exactly (tests compare them). Scores must not be NaN: wherever a selection is made, NaN is a
// c10::Error (the pipeline checks weights and statistics first, so NaN here is a bug).
enum class MaskKernel { Auto, Fused, TensorOps };

at::Tensor select_mask(const at::Tensor& scores, const MaskSpec& spec, MaskKernel kernel = MaskKernel::Auto);

// floor(sparsity * n), except that a product within rounding error of an integer counts as that
// integer (0.7 * 10 is 6.999... in binary; the user asked for 7).
int64_t pruned_count(double sparsity, int64_t n);

// The building blocks, exposed for SparseGPT and tests.
at::Tensor prune_lowest(const at::Tensor& scores, int64_t count,                   // whole matrix
                        MaskKernel kernel = MaskKernel::Auto);
at::Tensor prune_lowest_per_row(const at::Tensor& scores, int64_t per_row,         // each row
                                MaskKernel kernel = MaskKernel::Auto);
at::Tensor prune_n_of_m(const at::Tensor& scores, int64_t n, int64_t m,             // N:M with tail rule
                        MaskKernel kernel = MaskKernel::Auto);
// The tail rule, in one place: a last run of `tail` < m columns prunes floor(n * tail / m) of them
// per row (the same proportion rounded down; a tail of one column stays dense).
inline int64_t n_of_m_tail_pruned(int64_t tail, int64_t n, int64_t m) { return (n * tail) / m; }
// Number of weights prune_n_of_m removes from a row of `in` columns.
int64_t n_of_m_pruned_per_row(int64_t in, int64_t n, int64_t m);
// Whether `weight` ([out, in], columns in the order its mask was chosen in) is N:M sparse as
// prune_n_of_m leaves it: every row holds at least n zeros in each full group of m consecutive
// columns, and floor(n r / m) in a tail of r < m.
bool is_n_of_m_sparse(const at::Tensor& weight, int64_t n, int64_t m);

}  // namespace crepe::prune

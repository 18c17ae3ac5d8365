#pragma once
// Input-channel permutation for N:M sparsity (`--permute`), after RIA's channel reallocation.
//
// N:M prunes the N lowest scores of every run of M consecutive input columns, so two important
// columns that happen to be neighbours compete for the same M - N kept slots. Reordering the
// columns before the selection spreads them over different runs ("groups"); the weights keep their
// original layout, the permutation only decides which of them survive.
//
// With G = in / M groups (the in % M tail columns stay, unpermuted, at the end):
//  1. the columns are sorted by their total score (sum over rows, float64; ascending, stable);
//  2. position p of the groups (p = 0..M-1) takes the p-th slice of G sorted columns, dealt in snake
//     order (forwards for even p, backwards for odd p), which balances the group sums;
//  3. each position p in turn is refined by a linear sum assignment: the G columns at position p are
//     re-dealt among the G groups to maximise the total kept score, where a group's kept score is
//     the sum over rows of its M - N highest scores, and the value of putting column c into group g
//     is computed with g's other M - 1 columns fixed. A reassignment is taken only when it raises
//     the total; sweeps over p = 0..M-1 repeat until one changes nothing, or max_sweeps is reached.
// With blocks = B > 1 the groups are split into B contiguous runs (in the permuted order, as RIA's
// fast mode does) and each run is refined on its own: B assignments of size G/B instead of one of
// size G, O(G^3 / B^2) instead of O(G^3). The sort and the snake deal stay global.
// If the result does not keep strictly more score than the original order (all scores equal, or an
// adversarial input: the refinement only guarantees to beat the snake deal), the identity is returned.
//
// Everything is deterministic: no randomness, stable sorts, a deterministic assignment solver, and a
// cost matrix whose entries are summed in a fixed order whatever the thread count.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace crepe::prune {

// --permute-blocks 0 (the default) picks the fewest blocks of at most this many groups each. An
// assignment costs O(G^3): on 2 cores a 4096 x 11008 matrix at 2:4 (G = 2752) took 270 s in one
// block and 25 s in 4, for a kept-score gain of +1.26% and +1.20% (bench_scores --permute-blocks);
// a 7B model has 32 such matrices. Models up to 2048 input channels at 2:4 keep one block.
constexpr int64_t kAutoBlockGroups = 512;

struct PermutationOptions {
  int64_t blocks = 0;      // 0: auto (permutation_blocks); >= 1: that many, more than groups = one per group
  int64_t max_sweeps = 8;  // >= 0; 0 = the snake deal of step 2 alone, no refinement
};

struct PermutationReport {
  double kept_before = 0.0;  // kept score of plain N:M in the original column order
  double kept_after = 0.0;   // kept score with the permutation (>= kept_before)
  double total = 0.0;        // sum of all scores (kept + pruned)
  int64_t sweeps = 0;        // refinement sweeps run (the last one may have changed nothing)
  int64_t reassignments = 0; // assignments (one position of one block) that raised the kept score
  bool identity = false;     // the permutation fell back to (or is) the original order
  at::Tensor order;          // the permutation itself, as nm_channel_permutation returns it
};

// The block count used for G groups: options.blocks, or for 0 the fewest blocks of at most
// kAutoBlockGroups groups.
int64_t permutation_blocks(const PermutationOptions& options, int64_t groups);

// InputError naming --permute-blocks / --permute-sweeps when out of range.
void validate(const PermutationOptions& options);

// The permutation of the input columns of `scores` ([out, in], any floating dtype and device) for
// N:M: int64 [in] on the CPU, new position -> original column. The last in % m columns map to
// themselves. Requires 0 < n < m and finite scores. `report`, when given, receives the kept scores before and after.
at::Tensor nm_channel_permutation(const at::Tensor& scores, int64_t n, int64_t m, const PermutationOptions& options,
                                  PermutationReport* report = nullptr);

// Steps 1-2 alone (sort and snake deal), without the refinement or the identity fallback: exposed for
// tests and diagnostics.
at::Tensor nm_snake_permutation(const at::Tensor& scores, int64_t m);

// Sum of the scores prune_n_of_m keeps once the columns are put in `permutation`'s order (the
// original order when `permutation` is undefined), in float64. c10::Error if `permutation` is not an
// int64 permutation of 0..in-1.
double nm_kept_score(const at::Tensor& scores, const at::Tensor& permutation, int64_t n, int64_t m);

// An order as a list of column indices (files, manifests) and back (int64 on the CPU).
std::vector<int64_t> order_values(const at::Tensor& order);
at::Tensor order_tensor(const std::vector<int64_t>& values);
// Whether `order` holds each of 0..n-1 exactly once.
bool is_permutation(const std::vector<int64_t>& order, int64_t n);

// `t`'s columns in the permuted order: column j of the result is column order[j] of `t`, along the
// last dimension (a matrix's columns, or a per-column vector such as activation statistics).
// unpermute_columns is its inverse. `order` as nm_channel_permutation returns it (any device).
at::Tensor permute_columns(const at::Tensor& t, const at::Tensor& order);
at::Tensor unpermute_columns(const at::Tensor& t, const at::Tensor& order);

// The N:M keep-mask (true = kept) chosen in the permuted order and mapped back to the original
// column order: in every row it prunes exactly as many weights as prune_n_of_m(scores, n, m), and
// in the permuted order it is a valid N:M mask. Same device as `scores`.
at::Tensor permuted_nm_mask(const at::Tensor& scores, int64_t n, int64_t m, const PermutationOptions& options,
                            PermutationReport* report = nullptr);

}  // namespace crepe::prune

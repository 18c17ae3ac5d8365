#pragma once
// crepe_permutation.json, written beside a checkpoint pruned with `--permute`: every pruned weight's
// input-channel order, the one its mask is N:M in (the weights themselves keep the stored layout).
// For a weight W [out, in] and its order o (int64 [in], a permutation of 0..in-1), W[:, o] is N:M;
// a sparse kernel applies the same order to the layer's input, x[..., o].
//
//   {"format": "crepe input-channel permutation, version 1", "pattern": "2:4", "usage": "...",
//    "layers": {"model.layers.0.self_attn.q_proj.weight": [3, 0, ...], ...}}
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "crepe/io/checkpoint_writer.hpp"
#include "crepe/prune/mask.hpp"

namespace crepe::prune {

constexpr const char* kPermutationFileName = io::kPermutationFileName;

struct ChannelOrders {
  Pattern pattern;
  std::map<std::string, at::Tensor> orders;  // weight name -> int64 [in] on the CPU
};

// The file's text for `orders` (weight name and order, in the order given).
std::string permutation_file_text(const Pattern& pattern, const std::vector<std::pair<std::string, at::Tensor>>& orders);

// InputError naming `path` unless it is a file permutation_file_text wrote, every order a
// permutation of 0..n-1 (of integers) for some n.
ChannelOrders read_permutation_file(const std::string& path);

}  // namespace crepe::prune

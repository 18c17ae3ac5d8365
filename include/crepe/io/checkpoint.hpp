#pragma once
// A Hugging Face checkpoint directory: config.json, safetensors weights (single or sharded), and
// the tokenizer/generation files that travel with it.
//
// open() parses the config and checks, from the safetensors headers alone, that every tensor the
// architecture needs is present with the right shape, so a bad checkpoint fails before any compute.
// Weights are then read lazily, one block at a time, straight out of the memory map.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "crepe/core/device.hpp"
#include "crepe/io/safetensors.hpp"
#include "crepe/model/block.hpp"
#include "crepe/model/config.hpp"

namespace crepe::io {

class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const model::ModelConfig& config() const { return config_; }
  const TensorStore& tensors() const { return store_; }
  int64_t num_layers() const { return config_.num_layers; }

  // Block b's weights, converted to the placement's device and compute dtype:
  // upload_block(stage_block(b, placement), placement).
  model::BlockWeights load_block(int64_t b, const Placement& placement) const;
  // The slow half of a load, safe to run on another thread while the device computes: block b
  // copied out of the memory map in its stored dtype, into pinned memory when the placement is
  // CUDA (so that the upload is an asynchronous DMA copy).
  // Without `linear_weights` the seven linear weights stay undefined (norms and biases are staged):
  // for a caller that reads them one at a time itself (the search's streamed weights).
  model::BlockWeights stage_block(int64_t b, const Placement& placement, bool linear_weights = true) const;
  // The other half: staged weights onto the placement's device (non-blocking from pinned memory),
  // then converted to the compute dtype there. Also puts any block's weights in the form a forward
  // pass needs (a no-op for tensors already there). With `stored_linears` the linear weights keep
  // their dtype (the search holds the stored values and converts one block at a time to run it).
  static model::BlockWeights upload_block(const model::BlockWeights& staged, const Placement& placement,
                                          bool stored_linears = false);
  at::Tensor load_embedding(const Placement& placement) const;
  at::Tensor load_final_norm(const Placement& placement) const;
  at::Tensor load_lm_head(const Placement& placement) const;  // the embedding when tied

  // Tensor names, in the Hugging Face convention.
  static std::string linear_weight_name(int64_t block, model::Linear linear);
  static std::string linear_bias_name(int64_t block, model::Linear linear);
  // All tensor names of block b that crepe reads (norms, weights, biases).
  std::vector<std::string> block_tensor_names(int64_t block) const;

  // Parameter counts: all stored tensors, and the prunable linear weights of the blocks.
  int64_t parameter_count() const;
  int64_t linear_parameter_count() const;

  // Reads every tensor of the checkpoint once, one at a time out of the memory map, and throws an
  // InputError "SHARD_FILE: tensor 'NAME' contains NaN or Inf" at the first that holds a non-finite
  // value (--check-finite). Costs one pass over the weights; nothing is kept resident.
  void check_finite() const;

 private:
  at::Tensor load(const std::string& name, const Placement& placement) const;
  void warn_about_unknown_block_tensors() const;
  void validate_tensors() const;
  std::vector<int64_t> linear_shape(model::Linear linear) const;

  std::string dir_;
  model::ModelConfig config_;
  TensorStore store_;
};

}  // namespace crepe::io

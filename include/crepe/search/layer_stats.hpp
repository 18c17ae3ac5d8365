#pragma once
// Statistics for the search, gathered once: for the blocks in use, every linear input's ||X_j||^2
// (and, for the recon proxy only, its Gram matrix X^T X) from one dense calibration pass, and the
// hidden states entering each block for the network proxies' subsample (the first few calibration
// sequences, or held-out windows of --proxy-data). Cached in a
// safetensors file whose metadata records what produced it; a cache is reused only when that
// record matches the current request exactly (checked, not trusted).
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "crepe/engine/runner.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::search {

struct BlockStats {
  int64_t block = 0;
  std::array<prune::InputStats, model::kLinearInputCount> inputs;  // sq_sum, tokens, gram (when collected)
  at::Tensor sample_input;  // float32 [samples, seqlen, hidden] on the CPU; undefined without a subsample
};

struct SearchStats {
  std::vector<BlockStats> blocks;
  nlohmann::json provenance;  // model, data, nsamples, seqlen, seed, blocks: what produced these
};

// One dense streamed pass over blocks 0..max(blocks); statistics kept for `blocks` only, and each
// one's input hidden states for the sequences `proxy_ids` ([samples, seqlen]; undefined: none),
// which the network proxies run on (the first calibration sequences, or held-out text). Gram
// matrices only `with_gram`: for a 7B model they cost nearly as much as the pass itself (X^T X of
// an 11008-wide input per block) and 20 GiB of memory, and only the recon proxy reads them.
SearchStats collect_search_stats(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids,
                                 const std::vector<int64_t>& blocks, const engine::RunnerOptions& options,
                                 nlohmann::json provenance, const at::Tensor& proxy_ids = {}, bool with_gram = true);

void save_search_stats(const std::string& path, const SearchStats& stats);
// nullopt (with the reason in `why`) when the file is absent, was made for another request, or
// lacks the Gram matrices `need_gram` asks for; InputError naming the file when it is corrupt.
std::optional<SearchStats> load_search_stats(const std::string& path, const nlohmann::json& provenance,
                                             std::string* why = nullptr, bool need_gram = false);

// Whether every input of every block in `stats` has its Gram matrix.
bool has_gram(const SearchStats& stats);

// Whether every block in `stats` kept the network proxies' subsample.
bool has_subsample(const SearchStats& stats);
// Whether `blocks` (ascending) are all of a model's num_layers blocks: what kl needs.
bool covers_every_block(const std::vector<int64_t>& blocks, int64_t num_layers);

// "all", a count N (N blocks evenly spread, first and last included), or a list "0,3,5".
std::vector<int64_t> parse_layer_selection(const std::string& text, int64_t num_layers, const std::string& option);

}  // namespace crepe::search

#include "crepe/prune/pipeline.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/core/parse.hpp"

namespace crepe::prune {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// A stage's seconds on `device`: its queued work finishes inside the interval it is charged to.
Clock::time_point device_now(c10::Device device) {
  synchronize(device);
  return Clock::now();
}
double device_since(Clock::time_point start, c10::Device device) {
  synchronize(device);
  return since(start);
}

StatsRequest request_for(const PruneConfig& config) {
  StatsRequest request;
  request.gram = config.metric == Metric::SparseGPT || config.reconstruct;
  request.moments = config.reprune == Reprune::Dsnot;
  return request;
}

}  // namespace

bool dsnot_reprunes(const PruneConfig& config, model::Linear linear) {
  if (config.reprune != Reprune::Dsnot) return false;
  const bool mlp = linear == model::Linear::Gate || linear == model::Linear::Up || linear == model::Linear::Down;
  switch (config.dsnot.skip) {
    case DsnotSkip::Mlp: return !mlp;
    case DsnotSkip::Attention: return mlp;
    case DsnotSkip::None: return true;
  }
  return true;
}

PruneConfig without_reprune(PruneConfig config) {
  config.reprune = Reprune::None;
  return config;
}

bool needs_calibration(const PruneConfig& config) {
  return needs_activations(config.metric) || config.reconstruct || config.reprune == Reprune::Dsnot ||
         config.allocation == Allocation::Owl || config.allocation == Allocation::Dlp;
}

namespace {

// A checkpoint written from NaN would look complete: what goes in and what goes out must be finite.
// Non-finite stored weights are the input's fault (found here even without --check-finite); NaN
// made from finite weights and statistics would be crepe's.
void require_finite_weight(const at::Tensor& weight, const std::string& model_dir, const std::string& name) {
  if (at::isfinite(weight).all().item<bool>()) return;
  throw NumericalInputError(model_dir + ": tensor '" + name +
                            "' contains NaN or Inf (--check-finite checks every tensor before any work)");
}
void require_finite_result(const at::Tensor& pruned, const std::string& name) {
  if (!at::isfinite(pruned).all().item<bool>()) {
    throw std::logic_error("pruning " + name + " gave NaN or Inf from finite weights and statistics");
  }
}

// A weight update (SparseGPT's, or --reconstruct) can leave the range of a 16-bit stored dtype: an
// Inf written into the checkpoint would look like a finished run. Not crepe's fault, nor fixable
// by resuming.
void require_within_stored_range(const at::Tensor& written, const std::string& name, const PruneConfig& config) {
  if (at::isfinite(written).all().item<bool>()) return;
  const bool updated = config.metric == Metric::SparseGPT || config.reconstruct;
  throw NumericalInputError(name + ": " + (updated ? "the reconstruction's update" : "pruning") +
                            " gave values beyond the range of its stored dtype " +
                            std::string(c10::toString(written.scalar_type())) +
                            (updated ? " (try more calibration samples, or prune without the update)" : ""));
}

// Block b's linear weight as it is pruned (and as allocations read it): the loaded one when the
// compute dtype holds the stored values exactly (float32 holds bf16 and fp16), else the stored
// tensor itself, moved to the device. A bf16 forward pass on an fp16 or fp32 checkpoint must round
// neither the scores' inputs nor the weights that are kept and written.
at::Tensor stored_linear(const io::Checkpoint& checkpoint, int64_t b, model::Linear linear, const model::BlockWeights& weights) {
  const std::string name = io::Checkpoint::linear_weight_name(b, linear);
  const at::Tensor& loaded = weights[linear].weight;
  if (holds_exactly(loaded.scalar_type(), io::to_scalar_type(checkpoint.tensors().info(name).dtype))) return loaded;
  return checkpoint.tensors().load(name).to(loaded.device());
}

// Wanda scores |W| * ||X|| of each linear layer of block b, from its dense statistics.
std::vector<at::Tensor> block_wanda_scores(const io::Checkpoint& checkpoint, int64_t b, const model::BlockWeights& weights,
                                           const std::array<InputStats, model::kLinearInputCount>& stats) {
  std::vector<at::Tensor> scores;
  for (model::Linear linear : model::kLinears) {
    scores.push_back(wanda_score(stored_linear(checkpoint, b, linear, weights), stats[static_cast<int>(model::input_of(linear))].norm()));
  }
  return scores;
}

int64_t block_parameters(const model::BlockWeights& weights) {
  int64_t total = 0;
  for (model::Linear linear : model::kLinears) total += weights[linear].weight.numel();
  return total;
}

}  // namespace

std::array<InputStats, model::kLinearInputCount> collect_block_statistics(const engine::BlockRunner& runner, int64_t b,
                                                                           const model::BlockWeights& weights,
                                                                           const at::Tensor& states, StatsRequest request) {
  std::array<StatsAccumulator, model::kLinearInputCount> accumulators;
  accumulators.fill(StatsAccumulator(request));
  runner.observe(weights, states, [&](model::LinearInput which, const at::Tensor& x) {
    accumulators[static_cast<int>(which)].add(x);
  });
  std::array<InputStats, model::kLinearInputCount> stats;
  for (int i = 0; i < model::kLinearInputCount; ++i) {
    stats[i] = accumulators[i].take();
    require_finite(stats[i], runner.checkpoint().dir(), b, model::input_name(static_cast<model::LinearInput>(i)),
                   runner.options().placement.compute_dtype);
  }
  return stats;
}


Reprune parse_reprune(const std::string& name, const std::string& option) {
  if (name == "none" || name.empty()) return Reprune::None;
  if (name == "dsnot") return Reprune::Dsnot;
  throw_input_error(option, "unknown re-pruning method '" + name + "' (expected none or dsnot)");
}

void validate(const PruneConfig& config) {
  if (config.metric == Metric::Crepe) validate(config.crepe);
  validate(config.allocation_params);
  validate(config.permutation);
  if (config.reprune == Reprune::Dsnot) validate(config.dsnot);
  const bool score_based = config.metric != Metric::SparseGPT;
  require(!config.permute || config.mask.pattern.structured(), "--permute", "applies to N:M patterns only");
  require(!config.permute || score_based, "--permute", "needs a score-based method (sparsegpt chooses its mask column by column)");
  require(config.reprune == Reprune::None || score_based, "--reprune", "needs a score-based method, not sparsegpt");
  require(!config.reconstruct || score_based, "--reconstruct", "sparsegpt already reconstructs");
  require(config.allocation == Allocation::Uniform || !config.mask.pattern.structured(), "--allocation",
          "non-uniform allocation applies to unstructured sparsity (N:M fixes every layer's sparsity)");
  require(config.crepe.act_power >= 0 && config.crepe.act_power <= 1, "--act-power", "must be in [0, 1]");
  if (!config.mask.pattern.structured()) {
    require(config.mask.sparsity >= 0 && config.mask.sparsity < 1, "--sparsity",
            "must be in [0, 1), got " + number_text(config.mask.sparsity));
  }
}

at::Tensor prune_linear(const at::Tensor& weight, const InputStats& stats, const PruneConfig& config,
                        at::Tensor* mask_out, double sparsity, PermutationReport* permutation) {
  MaskSpec spec = config.mask;
  if (sparsity >= 0) spec.sparsity = sparsity;
  const bool nothing_to_prune = !spec.pattern.structured() && spec.sparsity == 0.0;
  if (nothing_to_prune) {
    if (mask_out) *mask_out = at::ones(weight.sizes(), weight.options().dtype(at::kBool));
    return weight.to(at::kFloat);
  }
  if (config.metric == Metric::SparseGPT) {
    return sparsegpt_prune(weight, stats.gram, stats.tokens, spec, config.sparsegpt, at::Tensor(), mask_out);
  }
  const at::Tensor act_norm = needs_activations(config.metric) ? stats.norm() : at::Tensor();
  const at::Tensor scores = score(config.metric, weight, act_norm, config.crepe);
  // With --permute, the mask is chosen (and DSnoT swaps within N:M groups) in the permuted column
  // order, where the groups are; it returns to the stored order at the end.
  PermutationReport unreported;
  const at::Tensor order = config.permute ? nm_channel_permutation(scores, spec.pattern.n, spec.pattern.m, config.permutation,
                                                                   permutation ? permutation : &unreported)
                                          : at::Tensor();
  auto in_order = [&](const at::Tensor& t) { return order.defined() ? permute_columns(t, order) : t; };
  at::Tensor mask = select_mask(in_order(scores), spec);
  if (config.reprune == Reprune::Dsnot) {
    DsnotOptions options = config.dsnot;
    options.n = spec.pattern.n;
    options.m = spec.pattern.m;
    // DSnoT's unstructured loop prunes in Wanda's order whatever made the mask; N:M in the mask's.
    const bool own_order = spec.pattern.structured() || config.metric == Metric::Wanda;
    const at::Tensor prune_order = own_order ? scores : score(Metric::Wanda, weight, stats.norm(), config.crepe);
    mask = dsnot_reprune(in_order(weight.to(at::kFloat)), mask, in_order(prune_order), in_order(stats.sequence_sum()),
                         in_order(stats.sequence_variance()), options);
  }
  if (order.defined()) mask = unpermute_columns(mask, order);
  if (mask_out) *mask_out = mask;
  if (config.reconstruct) {
    return sparsegpt_prune(weight, stats.gram, stats.tokens, spec, config.sparsegpt, mask);
  }
  return weight.to(at::kFloat) * mask;
}

std::vector<double> allocate_block_sparsity(const engine::BlockRunner& runner, const at::Tensor& calibration_ids,
                                            const PruneConfig& config) {
  const io::Checkpoint& checkpoint = runner.checkpoint();
  const int64_t blocks = checkpoint.num_layers();
  const double target = config.mask.sparsity;
  if (config.allocation == Allocation::Uniform) return std::vector<double>(blocks, target);
  const AllocationParams& params = config.allocation_params;
  std::vector<double> block_statistic;
  std::vector<int64_t> block_params;
  if (config.allocation == Allocation::Alpha) {
    // Heavy-tail exponents of the weights' spectra: no activations involved.
    at::Tensor no_states;
    std::vector<std::vector<std::optional<double>>> layer_alphas;
    runner.for_each_block(no_states, [&](int64_t b, model::BlockWeights& weights, at::Tensor&) {
      std::vector<std::optional<double>>& alphas = layer_alphas.emplace_back();
      for (model::Linear linear : model::kLinears) {
        const std::string name = io::Checkpoint::linear_weight_name(b, linear);
        const at::Tensor weight = stored_linear(checkpoint, b, linear, weights);
        require_finite_weight(weight, checkpoint.dir(), name);
        alphas.push_back(esd_alpha(weight));
        if (!alphas.back()) {
          spdlog::warn("{}: its spectrum has no tail to fit (all zero, or all singular values equal); block {}'s "
                       "AlphaPruning exponent leaves it out", name, b);
        }
      }
      block_params.push_back(block_parameters(weights));
    });
    return alpha_sparsities(block_alphas(layer_alphas), block_params, target, params.alpha_eps);
  }
  // OWL and DLP: one dense pass, statistics of every block's inputs.
  at::Tensor states = runner.embed(calibration_ids);
  runner.for_each_block(states, [&](int64_t b, model::BlockWeights& weights, at::Tensor& block_states) {
    const auto stats = collect_block_statistics(runner, b, weights, block_states, StatsRequest{});
    const auto scores = block_wanda_scores(checkpoint, b, weights, stats);
    block_statistic.push_back(config.allocation == Allocation::Owl ? block_outlier_ratio(scores, params.owl_m)
                                                                   : block_mean_score(scores));
    block_params.push_back(block_parameters(weights));
    runner.forward(weights, block_states);
  });
  return config.allocation == Allocation::Owl
             ? owl_sparsities(block_statistic, target, params.owl_lambda, block_params)
             : dlp_sparsities(block_statistic, target, params.dlp_alpha, block_params);
}

namespace {

// Statistics from the dense block, then every linear layer scored, masked and rounded to its stored
// dtype: `weights` leaves with the linear weights as they will be written.
std::vector<LayerOutcome> prune_block(const io::Checkpoint& checkpoint, const engine::BlockRunner& runner, int64_t b,
                                      model::BlockWeights& weights, const at::Tensor& states, const PruneConfig& config,
                                      PruneOutcome& outcome, bool calibrated) {
  const c10::Device device = runner.options().placement.device;
  auto t = device_now(device);
  std::array<InputStats, model::kLinearInputCount> stats;
  if (calibrated) stats = collect_block_statistics(runner, b, weights, states, request_for(config));
  outcome.statistics_seconds += device_since(t, device);
  std::vector<LayerOutcome> layers;
  for (model::Linear linear : model::kLinears) {
    t = Clock::now();
    const std::string name = io::Checkpoint::linear_weight_name(b, linear);
    at::Tensor& weight = weights[linear].weight;
    at::Tensor mask;
    PermutationReport permutation;
    const auto stored = io::to_scalar_type(checkpoint.tensors().info(name).dtype);
    const at::Tensor source = stored_linear(checkpoint, b, linear, weights);
    require_finite_weight(source, checkpoint.dir(), name);
    const at::Tensor pruned = prune_linear(source, stats[static_cast<int>(model::input_of(linear))],
                                           dsnot_reprunes(config, linear) ? config : without_reprune(config), &mask,
                                           outcome.block_targets[b], config.permute ? &permutation : nullptr);
    require_finite_result(pruned, name);
    weight = pruned.to(stored);
    require_within_stored_range(weight, name, config);
    const int64_t zeros = weight.numel() - weight.count_nonzero().item<int64_t>();
    layers.push_back({name, weight.numel(), mask.numel() - mask.sum().item<int64_t>(), zeros, since(t), permutation.order,
                      permutation.kept_before, permutation.kept_after});
    outcome.pruning_seconds += layers.back().seconds;
  }
  return layers;
}

}  // namespace

std::vector<double> PruneOutcome::block_sparsity() const {
  std::vector<double> fractions;
  for (size_t b = 0; b < block_total.size(); ++b) {
    fractions.push_back(block_total[b] ? static_cast<double>(block_pruned[b]) / static_cast<double>(block_total[b]) : 0.0);
  }
  return fractions;
}

PruneOutcome prune_model(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids, const PruneConfig& config,
                         const engine::RunnerOptions& options, const PrunedBlockSink& sink, const PruneHooks& hooks) {
  c10::InferenceMode inference;
  const auto start = Clock::now();
  validate(config);
  engine::BlockRunner runner(checkpoint, options);
  const bool calibrated = needs_calibration(config);
  PruneOutcome outcome;
  outcome.block_targets = allocate_block_sparsity(runner, calibration_ids, config);
  outcome.block_pruned.assign(outcome.block_targets.size(), 0);
  outcome.block_total.assign(outcome.block_targets.size(), 0);
  at::Tensor states = calibrated ? runner.embed(calibration_ids) : at::Tensor();

  runner.for_each_block(states, [&](int64_t b, model::BlockWeights& weights, at::Tensor& block_states) {
    std::vector<LayerOutcome> layers;
    const bool restored = hooks.restore && hooks.restore(b, weights, layers);
    if (restored) {
      for (model::Linear linear : model::kLinears) weights[linear].weight = weights[linear].weight.to(options.placement.device);
    } else {
      layers = prune_block(checkpoint, runner, b, weights, block_states, config, outcome, calibrated);
    }
    for (const LayerOutcome& layer : layers) {
      outcome.total += layer.numel;
      outcome.pruned += layer.pruned;
      outcome.block_total[b] += layer.numel;
      outcome.block_pruned[b] += layer.pruned;
      outcome.zeros += layer.zeros;
      outcome.permutation_kept_before += layer.permutation_kept_before;
      outcome.permutation_kept_after += layer.permutation_kept_after;
      outcome.layers.push_back(layer);
    }
    const auto t = device_now(options.placement.device);
    if (calibrated) runner.forward(io::Checkpoint::upload_block(weights, options.placement), block_states);
    outcome.forward_seconds += device_since(t, options.placement.device);
    sink(b, weights);
    if (hooks.finished) hooks.finished(b, weights, layers, restored);
  });
  outcome.seconds = since(start);
  return outcome;
}

}  // namespace crepe::prune

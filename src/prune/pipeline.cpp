#include "crepe/prune/pipeline.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <array>
#include <chrono>

#include "crepe/core/error.hpp"

namespace crepe::prune {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

StatsRequest request_for(const PruneConfig& config) {
  StatsRequest request;
  request.gram = config.metric == Metric::SparseGPT;
  return request;
}

// Dense pass over the block: statistics of each of its four distinct linear inputs.
std::array<InputStats, model::kLinearInputCount> collect_statistics(const engine::BlockRunner& runner,
                                                                     const model::BlockWeights& weights,
                                                                     const at::Tensor& states, StatsRequest request) {
  std::array<StatsAccumulator, model::kLinearInputCount> accumulators;
  accumulators.fill(StatsAccumulator(request));
  runner.observe(weights, states, [&](model::LinearInput which, const at::Tensor& x) {
    accumulators[static_cast<int>(which)].add(x);
  });
  std::array<InputStats, model::kLinearInputCount> stats;
  for (int i = 0; i < model::kLinearInputCount; ++i) stats[i] = accumulators[i].take();
  return stats;
}

}  // namespace

void validate(const PruneConfig& config) {
  if (config.metric == Metric::Crepe) validate(config.crepe);
  require(config.crepe.act_power >= 0 && config.crepe.act_power <= 1, "--act-power", "must be in [0, 1]");
  if (!config.mask.pattern.structured()) {
    require(config.mask.sparsity >= 0 && config.mask.sparsity < 1, "--sparsity",
            "must be in [0, 1), got " + std::to_string(config.mask.sparsity));
  }
}

at::Tensor prune_linear(const at::Tensor& weight, const InputStats& stats, const PruneConfig& config,
                        at::Tensor* mask_out) {
  const bool nothing_to_prune = !config.mask.pattern.structured() && config.mask.sparsity == 0.0;
  if (nothing_to_prune) {
    if (mask_out) *mask_out = at::ones(weight.sizes(), weight.options().dtype(at::kBool));
    return weight.to(at::kFloat);
  }
  if (config.metric == Metric::SparseGPT) {
    return sparsegpt_prune(weight, stats.gram, stats.tokens, config.mask, config.sparsegpt, at::Tensor(), mask_out);
  }
  const at::Tensor act_norm = needs_activations(config.metric) ? stats.norm() : at::Tensor();
  const at::Tensor mask = select_mask(score(config.metric, weight, act_norm, config.crepe), config.mask);
  if (mask_out) *mask_out = mask;
  return weight.to(at::kFloat) * mask;
}

PruneOutcome prune_model(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids, const PruneConfig& config,
                         const engine::RunnerOptions& options, const PrunedBlockSink& sink) {
  c10::InferenceMode inference;
  const auto start = Clock::now();
  validate(config);
  engine::BlockRunner runner(checkpoint, options);
  const bool calibrated = needs_activations(config.metric);
  at::Tensor states = calibrated ? runner.embed(calibration_ids) : at::Tensor();
  PruneOutcome outcome;

  runner.for_each_block(states, [&](int64_t b, model::BlockWeights& weights, at::Tensor& block_states) {
    auto t = Clock::now();
    std::array<InputStats, model::kLinearInputCount> stats;
    if (calibrated) stats = collect_statistics(runner, weights, block_states, request_for(config));
    outcome.statistics_seconds += since(t);

    for (model::Linear linear : model::kLinears) {
      t = Clock::now();
      at::Tensor& weight = weights[linear].weight;
      at::Tensor mask;
      const at::Tensor pruned = prune_linear(weight, stats[static_cast<int>(model::input_of(linear))], config, &mask);
      // Round to the stored dtype now, so the next blocks see exactly the weights that get written.
      const std::string name = io::Checkpoint::linear_weight_name(b, linear);
      const auto stored = io::to_scalar_type(checkpoint.tensors().info(name).dtype);
      weight = pruned.to(stored).to(weight.scalar_type());
      LayerOutcome layer{name, weight.numel(), mask.numel() - mask.sum().item<int64_t>(), since(t)};
      outcome.pruning_seconds += layer.seconds;
      outcome.total += layer.numel;
      outcome.pruned += layer.pruned;
      outcome.layers.push_back(std::move(layer));
    }

    t = Clock::now();
    if (calibrated) runner.forward(weights, block_states);
    outcome.forward_seconds += since(t);
    sink(b, weights);
  });
  outcome.seconds = since(start);
  return outcome;
}

}  // namespace crepe::prune

// The streamed pipeline against a hand-written sequential reference, and self-generated calibration.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <map>
#include <numeric>

#include "crepe/core/error.hpp"
#include "crepe/engine/generate.hpp"
#include "crepe/model/head.hpp"
#include "crepe/prune/dsnot.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/pipeline.hpp"
#include "crepe/prune/stats.hpp"
#include "test_support.hpp"

namespace crepe::prune {
namespace {

// The pipeline runs on the test device (CREPE_TEST_DEVICE); pruned weights come back to the CPU to
// be compared.
at::Tensor random_ids(int64_t n, int64_t seq, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(vocab, {n, seq}, at::TensorOptions().dtype(at::kLong));
}

// Sequential pruning written out directly with the model module: every block's masks come from
// the statistics of its input after the previous blocks were pruned. Computed on the test device,
// like the pipeline it checks; the weights are returned on the CPU.
std::vector<at::Tensor> reference_sequential_wanda(const io::Checkpoint& ckpt, const at::Tensor& ids, double sparsity) {
  const Placement placement = test::test_placement();
  const auto& config = ckpt.config();
  at::Tensor h = model::embed_tokens(ckpt.load_embedding(placement), ids);
  const auto rope = model::make_rope(config, ids.size(1), placement.device, placement.compute_dtype);
  std::vector<at::Tensor> weights;
  for (int64_t b = 0; b < config.num_layers; ++b) {
    model::BlockWeights w = ckpt.load_block(b, placement);
    std::array<at::Tensor, 4> sq_norms;
    model::InputObserver observer = [&](model::LinearInput which, const at::Tensor& x) {
      sq_norms[static_cast<int>(which)] = x.reshape({-1, x.size(-1)}).pow(2).sum(0);
    };
    model::block_forward(config, w, h, rope, &observer);
    for (model::Linear l : model::kLinears) {
      const at::Tensor W = w[l].weight;
      const at::Tensor metric = W.abs() * sq_norms[static_cast<int>(model::input_of(l))].sqrt().view({1, -1});
      // Wanda per row: prune the floor(sparsity * in) smallest of each row.
      const int64_t k = static_cast<int64_t>(sparsity * W.size(1));
      const at::Tensor order = std::get<1>(metric.sort(/*stable=*/true, 1, false));
      at::Tensor keep = at::ones_like(W, at::kBool);
      keep.scatter_(1, order.narrow(1, 0, k), false);
      w[l].weight = W * keep;
      weights.push_back(w[l].weight.cpu());
    }
    h = model::block_forward(config, w, h, rope);
  }
  return weights;
}

TEST(Pipeline, MatchesASequentialReferenceImplementation) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  const at::Tensor ids = random_ids(4, 64, ckpt.config().vocab_size, 1);
  PruneConfig config;
  config.metric = Metric::Wanda;
  config.mask.group = Group::Row;
  config.mask.sparsity = 0.5;
  std::vector<at::Tensor> got;
  const PruneOutcome outcome = prune_model(ckpt, ids, config, test::test_runner_options(), [&](int64_t, const model::BlockWeights& w) {
    for (model::Linear l : model::kLinears) got.push_back(w[l].weight.clone().cpu());
  });
  const auto expected = reference_sequential_wanda(ckpt, ids, 0.5);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(at::equal(got[i] == 0, expected[i] == 0)) << outcome.layers[i].tensor;
  }
  EXPECT_EQ(outcome.layers.size(), 35u);
  EXPECT_EQ(outcome.layers[0].tensor, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_DOUBLE_EQ(outcome.sparsity(), 0.5);
}

// A forward pass in a dtype narrower than the checkpoint's (bf16 compute, float32 weights) changes
// the statistics a little, but never the values of the weights that are kept: they are scored and
// written from the stored tensors.
TEST(Pipeline, KeptWeightsAreTheStoredValuesWhateverTheComputeDtype) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));  // float32
  const at::Tensor ids = random_ids(4, 64, ckpt.config().vocab_size, 5);
  engine::RunnerOptions options = test::test_runner_options();
  options.placement.compute_dtype = at::kBFloat16;
  for (Metric metric : {Metric::Magnitude, Metric::Wanda, Metric::Crepe}) {
    PruneConfig config;
    config.metric = metric;
    config.mask.sparsity = 0.5;
    int64_t kept = 0;
    prune_model(ckpt, ids, config, options, [&](int64_t b, const model::BlockWeights& w) {
      for (model::Linear l : model::kLinears) {
        const at::Tensor written = w[l].weight.cpu();
        const at::Tensor stored = ckpt.tensors().load(io::Checkpoint::linear_weight_name(b, l));
        ASSERT_EQ(written.scalar_type(), at::kFloat) << "the sink receives the stored dtype";
        EXPECT_TRUE(at::equal(written, stored * (written != 0))) << metric_name(metric) << ": kept values rounded";
        kept += (written != 0).sum().item<int64_t>();
      }
    });
    EXPECT_EQ(kept, ckpt.linear_parameter_count() / 2) << metric_name(metric);
  }
}

TEST(Pipeline, EveryMetricAndPatternGivesExactSparsityOnARealModel) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  const at::Tensor ids = random_ids(4, 64, ckpt.config().vocab_size, 2);
  for (Metric metric : {Metric::Magnitude, Metric::Wanda, Metric::RI, Metric::RIA, Metric::Crepe, Metric::SparseGPT}) {
    for (const char* pattern : {"unstructured", "2:4", "4:8"}) {
      PruneConfig config;
      config.metric = metric;
      config.crepe.gamma = 0.5;
      config.mask.pattern = parse_pattern(pattern);
      config.mask.sparsity = 0.6;
      const PruneOutcome outcome = prune_model(ckpt, ids, config, test::test_runner_options(), [&](int64_t, const model::BlockWeights& w) {
        for (model::Linear l : model::kLinears) {
          const at::Tensor W = w[l].weight;
          const int64_t in = W.size(1);
          if (config.mask.pattern.structured()) {
            const int64_t expected = n_of_m_pruned_per_row(in, config.mask.pattern.n, config.mask.pattern.m);
            EXPECT_TRUE(((W == 0).sum(1) >= expected).all().item<bool>()) << metric_name(metric) << " " << pattern;
          }
        }
      });
      for (const auto& layer : outcome.layers) {
        const int64_t out = layer.tensor.find("down_proj") != std::string::npos ? 64 : -1;
        if (!config.mask.pattern.structured() && metric != Metric::SparseGPT) {
          EXPECT_EQ(layer.pruned, pruned_count(0.6, layer.numel)) << layer.tensor;
        } else if (config.mask.pattern.structured() && out > 0) {
          EXPECT_EQ(layer.pruned, out * n_of_m_pruned_per_row(172, config.mask.pattern.n, config.mask.pattern.m));
        }
      }
    }
  }
}

// As DSnoT's reference: unstructured, the weights it prunes go in Wanda's order whatever metric
// made the mask (N:M: in the mask's own); and by default only the attention projections are
// re-pruned (its --skip_layer mlp).
TEST(Pipeline, DsnotPrunesInWandasOrderAndSkipsTheMlpByDefault) {
  at::manual_seed(12);
  const at::Tensor x = at::randn({4, 32, 64}) * 0.5 + 0.3;
  StatsAccumulator acc({/*gram=*/false, /*moments=*/true});
  acc.add(x);
  const InputStats stats = acc.take();
  const at::Tensor W = at::randn({48, 64}) * 0.02;
  PruneConfig config;
  config.metric = Metric::RIA;
  config.crepe = ria_params();
  config.reprune = Reprune::Dsnot;
  config.dsnot.threshold = 0.0;
  at::Tensor initial, repruned;
  prune_linear(W, stats, without_reprune(config), &initial);
  prune_linear(W, stats, config, &repruned);
  const at::Tensor wanda = score(Metric::Wanda, W, stats.norm(), config.crepe);
  const at::Tensor ria = score(Metric::RIA, W, stats.norm(), config.crepe);
  auto reprune_by = [&](const at::Tensor& order, const at::Tensor& mask, const DsnotOptions& o) {
    return dsnot_reprune(W, mask, order, stats.sequence_sum(), stats.sequence_variance(), o);
  };
  EXPECT_TRUE(at::equal(repruned, reprune_by(wanda, initial, config.dsnot)));
  EXPECT_FALSE(at::equal(repruned, reprune_by(ria, initial, config.dsnot)));  // the order matters here

  config.mask.pattern = parse_pattern("2:4");
  prune_linear(W, stats, without_reprune(config), &initial);
  prune_linear(W, stats, config, &repruned);
  DsnotOptions nm = config.dsnot;
  nm.n = 2;
  nm.m = 4;
  EXPECT_TRUE(at::equal(repruned, reprune_by(ria, initial, nm)));

  using model::Linear;
  for (Linear l : model::kLinears) {
    const bool mlp = l == Linear::Gate || l == Linear::Up || l == Linear::Down;
    EXPECT_EQ(dsnot_reprunes(config, l), !mlp);
    config.dsnot.skip = DsnotSkip::Attention;
    EXPECT_EQ(dsnot_reprunes(config, l), mlp);
    config.dsnot.skip = DsnotSkip::None;
    EXPECT_TRUE(dsnot_reprunes(config, l));
    config.dsnot.skip = DsnotSkip::Mlp;
  }
  EXPECT_FALSE(dsnot_reprunes(without_reprune(config), Linear::Q));
  EXPECT_EQ(parse_dsnot_skip("attention"), DsnotSkip::Attention);
  EXPECT_THROW(parse_dsnot_skip("self_attn"), InputError);
}

// DSnoT's error and threshold are per calibration sequence, as in its reference: with 64 tokens per
// sequence a row whose expected error is 0.01 per token (0.64 per sequence) is still re-pruned at
// the default threshold 0.1. Checked against DSnoT called directly on sums computed here.
TEST(Pipeline, DsnotMeasuresTheErrorOverOneCalibrationSequence) {
  at::manual_seed(11);
  const int64_t sequences = 8, seqlen = 64, in = 96, out = 40;
  const at::Tensor x = at::randn({sequences, seqlen, in}) * 0.5 + 0.3;
  StatsAccumulator acc({/*gram=*/false, /*moments=*/true});
  acc.add(x);
  const InputStats stats = acc.take();
  const at::Tensor W = at::randn({out, in}) * 0.02;
  PruneConfig config;
  config.metric = Metric::Wanda;
  config.mask.group = Group::Row;
  config.reprune = Reprune::Dsnot;
  at::Tensor initial, repruned;
  PruneConfig plain = config;
  plain.reprune = Reprune::None;
  prune_linear(W, stats, plain, &initial);
  prune_linear(W, stats, config, &repruned);

  const at::Tensor per_sequence = stats.sequence_sum();
  ASSERT_TRUE(at::allclose(per_sequence.to(at::kDouble), x.to(at::kDouble).sum(1).mean(0), 1e-5, 1e-5));
  const at::Tensor scores = score(Metric::Wanda, W, stats.norm(), config.crepe);
  const at::Tensor expected = dsnot_reprune(W, initial, scores, per_sequence, stats.sequence_variance(), config.dsnot);
  EXPECT_TRUE(at::equal(repruned, expected));
  // The unit matters here: per token, most rows are already below 0.1 and would stay as they are.
  const at::Tensor per_token = dsnot_reprune(W, initial, scores, stats.mean(), stats.sequence_variance(), config.dsnot);
  const int64_t rows_changed = repruned.ne(initial).any(1).sum().item<int64_t>();
  const int64_t rows_changed_per_token = per_token.ne(initial).any(1).sum().item<int64_t>();
  EXPECT_GT(rows_changed, rows_changed_per_token);
  EXPECT_GT(rows_changed, out / 2);
  EXPECT_EQ(repruned.sum().item<int64_t>(), initial.sum().item<int64_t>());
}

TEST(Pipeline, MagnitudeNeedsNoCalibration) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  PruneConfig config;
  config.metric = Metric::Magnitude;
  const PruneOutcome outcome = prune_model(ckpt, at::Tensor(), config, test::test_runner_options(), [](int64_t, const model::BlockWeights&) {});
  EXPECT_EQ(outcome.layers.size(), 35u);  // ran without any calibration data
  EXPECT_DOUBLE_EQ(outcome.sparsity(), 0.5);
}

TEST(Generate, SelfGeneratedCalibrationIsSeededAndValid) {
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  engine::GenerationOptions options;
  options.count = 5;
  options.length = 24;
  options.batch_size = 2;
  options.progress = false;
  const at::Tensor a = engine::generate_calibration(ckpt, Placement{}, options);
  const at::Tensor b = engine::generate_calibration(ckpt, Placement{}, options);
  options.seed = 1;
  const at::Tensor c = engine::generate_calibration(ckpt, Placement{}, options);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{5, 24}));
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_TRUE((a.select(1, 0) == 1).all().item<bool>());
  EXPECT_TRUE((a >= 0).all().item<bool>() && (a < 512).all().item<bool>());
  // The model's own samples are text it finds likely: far below a uniform guess's perplexity (512).
  c10::InferenceMode guard;
  const Placement cpu;
  at::Tensor h = model::embed_tokens(ckpt.load_embedding(cpu), a);
  const auto rope = model::make_rope(ckpt.config(), 24, cpu.device, cpu.compute_dtype);
  for (int64_t blk = 0; blk < ckpt.num_layers(); ++blk) h = model::block_forward(ckpt.config(), ckpt.load_block(blk, cpu), h, rope);
  const at::Tensor nll = model::next_token_nll(model::output_logits(ckpt.config(), ckpt.load_final_norm(cpu), ckpt.load_lm_head(cpu), h), a);
  EXPECT_LT(std::exp(nll.mean().item<double>()), 20.0);
}

}  // namespace
}  // namespace crepe::prune

namespace crepe::prune {
namespace {

// Every composition option with every score-based metric, on a real model: it runs, keeps N:M valid
// (with --permute, in the saved channel order), and the overall sparsity is the target (allocation
// redistributes, never adds).
TEST(Composition, EveryOptionWithEveryScoreMetric) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  const at::Tensor ids = random_ids(4, 64, ckpt.config().vocab_size, 3);
  struct Option {
    std::string name;
    std::function<void(PruneConfig&)> apply;
  };
  const std::vector<Option> options = {
      {"permute", [](PruneConfig& c) { c.mask.pattern = parse_pattern("2:4"); c.permute = true; }},
      // down_proj's 172 inputs leave a tail of 4 columns at 4:8.
      {"permute 4:8 + dsnot", [](PruneConfig& c) { c.mask.pattern = parse_pattern("4:8"); c.permute = true; c.reprune = Reprune::Dsnot; }},
      {"permute + reconstruct", [](PruneConfig& c) { c.mask.pattern = parse_pattern("2:4"); c.permute = true; c.reconstruct = true; }},
      {"owl", [](PruneConfig& c) { c.mask.sparsity = 0.6; c.allocation = Allocation::Owl; }},
      {"alpha", [](PruneConfig& c) { c.mask.sparsity = 0.6; c.allocation = Allocation::Alpha; }},
      {"dlp", [](PruneConfig& c) { c.mask.sparsity = 0.6; c.allocation = Allocation::Dlp; }},
      {"dsnot", [](PruneConfig& c) { c.reprune = Reprune::Dsnot; }},
      {"dsnot 4:8", [](PruneConfig& c) { c.mask.pattern = parse_pattern("4:8"); c.reprune = Reprune::Dsnot; }},
      {"reconstruct", [](PruneConfig& c) { c.reconstruct = true; }},
  };
  for (Metric metric : {Metric::Magnitude, Metric::Wanda, Metric::RI, Metric::RIA, Metric::Crepe}) {
    for (const Option& option : options) {
      PruneConfig config;
      config.metric = metric;
      config.crepe.gamma = 0.5;
      option.apply(config);
      const std::string label = std::string(metric_name(metric)) + " + " + option.name;
      std::map<std::string, at::Tensor> written;
      const PruneOutcome outcome = prune_model(ckpt, ids, config, test::test_runner_options(), [&](int64_t b, const model::BlockWeights& w) {
        for (model::Linear l : model::kLinears) written[io::Checkpoint::linear_weight_name(b, l)] = w[l].weight.cpu();
      });
      ASSERT_EQ(outcome.layers.size(), written.size()) << label;
      for (const LayerOutcome& layer : outcome.layers) {
        const at::Tensor& W = written.at(layer.tensor);
        EXPECT_EQ(layer.input_permutation.defined(), config.permute) << label;
        if (!config.mask.pattern.structured()) continue;
        // With --permute, N:M holds in the saved channel order (the stored layout need not be N:M).
        const at::Tensor in_order = config.permute ? permute_columns(W, layer.input_permutation) : W;
        EXPECT_TRUE(is_n_of_m_sparse(in_order, config.mask.pattern.n, config.mask.pattern.m)) << label << " " << layer.tensor;
      }
      const double target = config.mask.pattern.structured() ? static_cast<double>(config.mask.pattern.n) / config.mask.pattern.m
                                                             : config.mask.sparsity;
      EXPECT_NEAR(outcome.sparsity(), target, 2e-3) << label;
      // Each block's achieved sparsity is measured, not its target: never above it, and below it
      // by at most one weight per row of the narrowest matrix (64 inputs: a row group's floor).
      const std::vector<double> achieved = outcome.block_sparsity();
      ASSERT_EQ(achieved.size(), outcome.block_targets.size()) << label;
      EXPECT_EQ(std::accumulate(outcome.block_pruned.begin(), outcome.block_pruned.end(), int64_t{0}), outcome.pruned) << label;
      for (size_t b = 0; b < achieved.size(); ++b) {
        EXPECT_LE(achieved[b], outcome.block_targets[b] + 1e-12) << label << " block " << b;
        EXPECT_GE(achieved[b], outcome.block_targets[b] - 1.0 / 64 - 1e-12) << label << " block " << b;
      }
      if (config.allocation != Allocation::Uniform) {
        EXPECT_GT(*std::max_element(outcome.block_targets.begin(), outcome.block_targets.end()) -
                      *std::min_element(outcome.block_targets.begin(), outcome.block_targets.end()),
                  1e-3)
            << label << ": allocation should differ between blocks";
      }
      if (config.permute) EXPECT_GE(outcome.permutation_kept_after, outcome.permutation_kept_before) << label;
    }
  }
}

TEST(Composition, IncompatibleCombinationsAreRefused) {
  PruneConfig c;
  c.metric = Metric::SparseGPT;
  c.mask.pattern = parse_pattern("2:4");
  c.permute = true;
  EXPECT_THROW(validate(c), InputError);
  c = PruneConfig{};
  c.permute = true;  // unstructured
  EXPECT_THROW(validate(c), InputError);
  c = PruneConfig{};
  c.mask.pattern = parse_pattern("2:4");
  c.allocation = Allocation::Owl;
  EXPECT_THROW(validate(c), InputError);
  c = PruneConfig{};
  c.metric = Metric::SparseGPT;
  c.reconstruct = true;
  EXPECT_THROW(validate(c), InputError);
}

TEST(Composition, ReconstructionLowersTheBlockOutputErrorOfTheSameMask) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/mini-llama-6m"));
  const at::Tensor ids = random_ids(8, 64, ckpt.config().vocab_size, 4);
  PruneConfig plain;
  plain.metric = Metric::Wanda;
  plain.mask.sparsity = 0.6;
  PruneConfig rebuilt = plain;
  rebuilt.reconstruct = true;
  std::vector<at::Tensor> a, b;
  prune_model(ckpt, ids, plain, test::test_runner_options(), [&](int64_t blk, const model::BlockWeights& w) {
    if (blk == 0) for (model::Linear l : model::kLinears) a.push_back(w[l].weight.cpu().to(at::kFloat));
  });
  prune_model(ckpt, ids, rebuilt, test::test_runner_options(), [&](int64_t blk, const model::BlockWeights& w) {
    if (blk == 0) for (model::Linear l : model::kLinears) b.push_back(w[l].weight.cpu().to(at::kFloat));
  });
  // Same masks in block 0 (same dense inputs), different kept values.
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(at::equal(a[i] == 0, b[i] == 0 | (a[i] == 0)));
  }
  // And the block's output moves closer to the dense block's output.
  const Placement cpu;
  at::Tensor h = model::embed_tokens(ckpt.load_embedding(cpu), ids);
  const auto rope = model::make_rope(ckpt.config(), 64, cpu.device, cpu.compute_dtype);
  model::BlockWeights dense = ckpt.load_block(0, cpu), wa = dense, wb = dense;
  for (size_t i = 0; i < a.size(); ++i) {
    wa[model::kLinears[i]].weight = a[i];
    wb[model::kLinears[i]].weight = b[i];
  }
  const at::Tensor target = model::block_forward(ckpt.config(), dense, h, rope);
  const double err_plain = (model::block_forward(ckpt.config(), wa, h, rope) - target).pow(2).sum().item<double>();
  const double err_rebuilt = (model::block_forward(ckpt.config(), wb, h, rope) - target).pow(2).sum().item<double>();
  EXPECT_LT(err_rebuilt, err_plain);
}

}  // namespace
}  // namespace crepe::prune

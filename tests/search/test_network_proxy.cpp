// The network proxies (block_out, kl) against direct computations with the model module, and the
// subsample's place in the statistics cache.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "crepe/core/error.hpp"
#include "crepe/model/head.hpp"
#include "crepe/search/layer_stats.hpp"
#include "crepe/search/network_proxy.hpp"
#include "crepe/search/pho.hpp"
#include "biased_model.hpp"
#include "test_support.hpp"

namespace crepe::search {
namespace {

struct Fixture {
  io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  engine::RunnerOptions run = test::test_runner_options();  // the proxies run there; the references on the CPU
  at::Tensor ids;
  SearchStats stats;
  ProxyInputs inputs;

  Fixture(const std::vector<int64_t>& blocks, int64_t samples, c10::ScalarType compute = at::kFloat) {
    run.placement.compute_dtype = compute;
    at::manual_seed(11);
    ids = at::randint(ckpt.config().vocab_size, {6, 24}, at::TensorOptions().dtype(at::kLong));
    const at::Tensor proxy_ids = samples > 0 ? ids.narrow(0, 0, samples) : at::Tensor();
    stats = collect_search_stats(ckpt, ids, blocks, run, {{"blocks", blocks}}, proxy_ids);
    inputs = proxy_inputs(ckpt, stats, run);
  }

  // The candidate's pruned weights, block by block, computed from the definitions directly.
  std::vector<model::BlockWeights> pruned_blocks(const Candidate& c, const prune::MaskSpec& mask) const {
    std::vector<model::BlockWeights> blocks;
    prune::MaskSpec spec = mask;
    spec.group = c.group;
    for (const BlockStats& b : stats.blocks) {
      model::BlockWeights w = ckpt.load_block(b.block, Placement{});
      for (model::Linear l : model::kLinears) {
        const at::Tensor W = w[l].weight;
        const auto& in = b.inputs[static_cast<int>(model::input_of(l))];
        w[l].weight = W * prune::select_mask(prune::crepe_score(W, in.norm(), c.crepe), spec);
      }
      blocks.push_back(std::move(w));
    }
    return blocks;
  }
};

Candidate some_candidate() {
  Candidate c;
  c.crepe.kernel_size = 5;
  c.crepe.beta = 0.5;
  c.crepe.gamma = 0.2;
  c.crepe.act_power = 0.7;
  return c;
}

TEST(NetworkProxy, BlockOutputErrorMatchesADirectComputation) {
  c10::InferenceMode guard;
  Fixture f({1, 3}, 4);
  ASSERT_NE(f.inputs.network, nullptr);
  EXPECT_EQ(f.inputs.network->samples(), 4);
  EXPECT_FALSE(f.inputs.network->whole_model());
  prune::MaskSpec mask;
  mask.sparsity = 0.5;
  const Candidate c = some_candidate();
  const double value = proxy_values(f.inputs, c, mask, {Proxy::BlockOut}).at(Proxy::BlockOut);

  const auto pruned = f.pruned_blocks(c, mask);
  const auto rope = model::make_rope(f.ckpt.config(), 24, c10::Device(c10::kCPU), at::kFloat);
  double error = 0, update = 0;
  for (size_t i = 0; i < f.stats.blocks.size(); ++i) {
    const at::Tensor x = f.stats.blocks[i].sample_input;
    const at::Tensor dense = model::block_forward(f.ckpt.config(), f.ckpt.load_block(f.stats.blocks[i].block, Placement{}), x, rope);
    const at::Tensor sparse = model::block_forward(f.ckpt.config(), pruned[i], x, rope);
    error += (sparse - dense).pow(2).sum().item<double>();
    update += (dense - x).pow(2).sum().item<double>();
  }
  EXPECT_GT(value, 0.0);
  EXPECT_NEAR(value, error / update, 1e-4 * error / update);
}

TEST(NetworkProxy, KlMatchesADirectComputationAndIsZeroWhenNothingIsPruned) {
  c10::InferenceMode guard;
  Fixture f({0, 1, 2, 3, 4}, 3);
  ASSERT_TRUE(f.inputs.network->whole_model());
  prune::MaskSpec mask;
  mask.sparsity = 0.6;
  const Candidate c = some_candidate();
  const double value = proxy_values(f.inputs, c, mask, {Proxy::Kl}).at(Proxy::Kl);

  const auto pruned = f.pruned_blocks(c, mask);
  const auto rope = model::make_rope(f.ckpt.config(), 24, c10::Device(c10::kCPU), at::kFloat);
  const Placement cpu;
  at::Tensor dense = model::embed_tokens(f.ckpt.load_embedding(cpu), f.ids.narrow(0, 0, 3));
  at::Tensor sparse = dense.clone();
  for (int64_t b = 0; b < f.ckpt.num_layers(); ++b) {
    dense = model::block_forward(f.ckpt.config(), f.ckpt.load_block(b, cpu), dense, rope);
    sparse = model::block_forward(f.ckpt.config(), pruned[b], sparse, rope);
  }
  auto log_probs = [&](const at::Tensor& h) {
    return at::log_softmax(model::output_logits(f.ckpt.config(), f.ckpt.load_final_norm(cpu), f.ckpt.load_lm_head(cpu), h)
                               .to(at::kDouble), -1);
  };
  const at::Tensor p = log_probs(dense), q = log_probs(sparse);
  const double expected = (p.exp() * (p - q)).sum(-1).mean().item<double>();
  EXPECT_GT(value, 0.0);
  EXPECT_NEAR(value, expected, 1e-4 * expected);

  mask.sparsity = 0.0;
  const auto none = proxy_values(f.inputs, c, mask, {Proxy::Kl, Proxy::BlockOut});
  EXPECT_NEAR(none.at(Proxy::Kl), 0.0, 1e-6);  // float32 rounding only: the weights are the dense ones
  EXPECT_NEAR(none.at(Proxy::BlockOut), 0.0, 1e-12);
  mask.sparsity = 0.8;  // more pruning of the same scores moves the output further
  EXPECT_GT(proxy_values(f.inputs, c, mask, {Proxy::Kl}).at(Proxy::Kl), value);
}

TEST(NetworkProxy, RunsInAnotherComputeDtypeThanTheCachedFloat32States) {
  // The subsample's states are cached in float32 on the host; the network may compute in bf16 (or
  // on a GPU): the proxies must move them, and agree with float32 to bf16's precision.
  c10::InferenceMode guard;
  prune::MaskSpec mask;
  mask.sparsity = 0.5;
  Fixture fp32({0, 1, 2, 3, 4}, 2), bf16({0, 1, 2, 3, 4}, 2, at::kBFloat16);
  const auto a = proxy_values(fp32.inputs, some_candidate(), mask, {Proxy::Kl, Proxy::BlockOut});
  const auto b = proxy_values(bf16.inputs, some_candidate(), mask, {Proxy::Kl, Proxy::BlockOut});
  for (Proxy p : {Proxy::Kl, Proxy::BlockOut}) {
    EXPECT_TRUE(std::isfinite(b.at(p))) << proxy_name(p);
    EXPECT_NEAR(b.at(p), a.at(p), 0.1 * a.at(p)) << proxy_name(p);
  }
}

TEST(NetworkProxy, SaysWhatIsMissing) {
  c10::InferenceMode guard;
  prune::MaskSpec mask;
  mask.sparsity = 0.5;
  std::string why;
  Fixture without({0, 1}, 0);
  EXPECT_EQ(without.inputs.network, nullptr);
  EXPECT_FALSE(available(Proxy::BlockOut, without.inputs, &why));
  EXPECT_NE(why.find("--proxy-samples"), std::string::npos);
  EXPECT_THROW(proxy_values(without.inputs, Candidate{}, mask, {Proxy::BlockOut}), InputError);
  Fixture some({0, 1}, 2);
  EXPECT_TRUE(available(Proxy::BlockOut, some.inputs));
  EXPECT_FALSE(available(Proxy::Kl, some.inputs, &why));
  EXPECT_NE(why.find("--layers all"), std::string::npos);
  EXPECT_THROW(proxy_values(some.inputs, Candidate{}, mask, {Proxy::Kl}), InputError);
  EXPECT_EQ(parse_proxy("block_out"), Proxy::BlockOut);
  EXPECT_EQ(parse_proxy("kl"), Proxy::Kl);
  EXPECT_THROW(parse_proxy("perplexity"), InputError);
}

std::vector<at::Tensor> linears_of(const model::BlockWeights& block) {
  std::vector<at::Tensor> weights;
  for (model::Linear l : model::kLinears) weights.push_back(block[l].weight);
  return weights;
}

TEST(NetworkProxy, APassIsReadWhenCompleteAndOnlyForWhatItMeasured) {
  c10::InferenceMode guard;
  Fixture f({0, 1, 2, 3, 4}, 2);
  prune::MaskSpec mask;
  mask.sparsity = 0.5;
  const auto pruned = f.pruned_blocks(some_candidate(), mask);
  NetworkProxy::Pass pass(*f.inputs.network, /*block_out=*/true, /*kl=*/false);
  pass.add_block(linears_of(pruned[0]));
  EXPECT_THROW(pass.block_output_error(), InputError) << "four blocks are missing";
  for (size_t b = 1; b < pruned.size(); ++b) pass.add_block(linears_of(pruned[b]));
  EXPECT_THROW(pass.add_block(linears_of(pruned[0])), InputError) << "one block too many";
  EXPECT_THROW(pass.kl_divergence(), InputError) << "kl was not measured";
  const double expected = proxy_values(f.inputs, some_candidate(), mask, {Proxy::BlockOut}).at(Proxy::BlockOut);
  EXPECT_NEAR(pass.block_output_error(), expected, 1e-5 * expected);
}

TEST(NetworkProxy, HoldsEachWeightOnceAsStored) {
  // mini-llama-6m stores bf16 and the CPU computes in float32: the proxies keep the bf16 values
  // (the ones `crepe prune` scores), shared between the layers and the network.
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/mini-llama-6m"));
  const engine::RunnerOptions run = test::test_runner_options();
  at::manual_seed(12);
  const at::Tensor ids = at::randint(ckpt.config().vocab_size, {2, 16}, at::TensorOptions().dtype(at::kLong));
  const SearchStats stats = collect_search_stats(ckpt, ids, {0, 1}, run, {{"blocks", {0, 1}}}, ids);
  const ProxyInputs inputs = proxy_inputs(ckpt, stats, run);
  ASSERT_NE(inputs.network, nullptr);
  ASSERT_EQ(inputs.layers.size(), 2u * model::kLinearCount);
  for (size_t i = 0; i < inputs.layers.size(); ++i) {
    const model::Linear linear = model::kLinears[i % model::kLinearCount];
    const at::Tensor stored = ckpt.tensors().load(io::Checkpoint::linear_weight_name(static_cast<int64_t>(i / 7), linear));
    EXPECT_EQ(inputs.layers[i].weight.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(at::equal(inputs.layers[i].weight.cpu(), stored));
  }
}

// Every proxy on a model's every block, its weights resident and streamed: the streamed ones are not
// held, and the values are identical. Returns them (unstructured 50%, then 2:4).
std::vector<std::map<Proxy, double>> streamed_and_resident_agree(const std::string& model) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(model);
  const engine::RunnerOptions run = test::test_runner_options();
  at::manual_seed(13);
  const at::Tensor ids = at::randint(ckpt.config().vocab_size, {3, 16}, at::TensorOptions().dtype(at::kLong));
  std::vector<int64_t> all(static_cast<size_t>(ckpt.num_layers()));
  std::iota(all.begin(), all.end(), 0);
  const SearchStats stats = collect_search_stats(ckpt, ids, all, run, {{"blocks", all}}, ids.narrow(0, 0, 2));
  // A tiny model fits anywhere: auto keeps it (a device hint is for the device only); explicit
  // choices pass through.
  EXPECT_EQ(resolve_weight_holding(WeightHolding::Auto, ckpt, stats, run, true, run.placement.device.is_cpu() ? 0 : std::optional<int64_t>()),
            WeightHolding::Resident);
  if (!run.placement.device.is_cpu()) {  // a measured device value is the one used
    EXPECT_EQ(resolve_weight_holding(WeightHolding::Auto, ckpt, stats, run, true, 0), WeightHolding::Stream);
  }
  EXPECT_EQ(resolve_weight_holding(WeightHolding::Stream, ckpt, stats, run), WeightHolding::Stream);
  EXPECT_EQ(resolve_weight_holding(WeightHolding::Resident, ckpt, stats, run), WeightHolding::Resident);
  const ProxyInputs resident = proxy_inputs(ckpt, stats, run, true, WeightHolding::Resident);
  const ProxyInputs streamed = proxy_inputs(ckpt, stats, run, true, WeightHolding::Stream);
  EXPECT_EQ(streamed.layers.size(), resident.layers.size());
  for (size_t i = 0; i < std::min(streamed.layers.size(), resident.layers.size()); ++i) {
    EXPECT_FALSE(streamed.layers[i].weight.defined()) << streamed.layers[i].name;
    EXPECT_TRUE(resident.layers[i].weight.defined()) << resident.layers[i].name;
    EXPECT_TRUE(at::equal(layer_weight(streamed, streamed.layers[i]).to(resident.layers[i].weight.device()),
                          resident.layers[i].weight));
  }
  const std::vector<Proxy> every(std::begin(kAllProxies), std::end(kAllProxies));
  std::vector<std::map<Proxy, double>> values;
  for (const char* pattern : {"unstructured", "2:4"}) {
    prune::MaskSpec mask;
    mask.pattern = prune::parse_pattern(pattern);
    mask.sparsity = 0.5;
    const auto held = proxy_values(resident, some_candidate(), mask, every);
    const auto read = proxy_values(streamed, some_candidate(), mask, every);
    EXPECT_EQ(held.size(), every.size());
    for (Proxy p : every) {
      EXPECT_GT(held.at(p), 0.0) << proxy_name(p);
      if (run.placement.device.is_cpu()) {
        EXPECT_EQ(read.at(p), held.at(p)) << proxy_name(p) << " " << pattern;
      } else {  // the same inputs, but a GPU library may pick another kernel from one call to the next
        EXPECT_NEAR(read.at(p), held.at(p), 1e-5 * held.at(p)) << proxy_name(p) << " " << pattern;
      }
    }
    values.push_back(held);
  }
  return values;
}

TEST(NetworkProxy, StreamedWeightsAreNotHeldAndGiveTheValuesOfResidentOnes) {
  // mini-llama-6m stores bf16: streaming reads the same stored values the resident proxies hold.
  streamed_and_resident_agree(test::shared_path("models/mini-llama-6m"));
  // With biases on every linear layer (kept, not streamed), which the network proxies do use.
  test::TempDir dir;
  const std::string plain = test::shared_path("models/stories260k");
  const auto biased = streamed_and_resident_agree(test::make_biased_copy(dir, plain));
  const auto unbiased = streamed_and_resident_agree(plain);
  for (Proxy p : {Proxy::BlockOut, Proxy::Kl}) EXPECT_NE(biased[0].at(p), unbiased[0].at(p)) << proxy_name(p);
}

TEST(NetworkProxy, WeightHoldingOptionAndAutosRule) {
  EXPECT_EQ(parse_weight_holding("auto"), WeightHolding::Auto);
  EXPECT_EQ(parse_weight_holding("resident"), WeightHolding::Resident);
  EXPECT_EQ(parse_weight_holding("stream"), WeightHolding::Stream);
  EXPECT_THROW(parse_weight_holding("gpu"), InputError);
  constexpr int64_t GiB = int64_t{1} << 30;
  // Known free memory: weights and working set within 90% of it.
  EXPECT_TRUE(weights_fit(13 * GiB, 2 * GiB, 80 * GiB));     // a 16-bit 7B model on an 80 GiB card
  EXPECT_FALSE(weights_fit(130 * GiB, 2 * GiB, 139 * GiB));  // a 70B model on an H200
  EXPECT_TRUE(weights_fit(16 * GiB, 2 * GiB, 20 * GiB));     // 18 <= 18
  EXPECT_FALSE(weights_fit(16 * GiB, 3 * GiB, 20 * GiB));
  // Unknown: resident up to 16 GiB of weights.
  EXPECT_TRUE(weights_fit(16 * GiB, 100 * GiB, std::nullopt));
  EXPECT_FALSE(weights_fit(16 * GiB + 1, 0, std::nullopt));
}

TEST(NetworkProxy, ACacheHoldingNaNIsRefused) {
  c10::InferenceMode guard;
  Fixture f({1}, 2);
  f.stats.blocks[0].inputs[2].sq_sum[5] = std::numeric_limits<float>::quiet_NaN();
  test::TempDir dir;
  const std::string path = dir.file("stats.safetensors");
  save_search_stats(path, f.stats);
  try {
    load_search_stats(path, f.stats.provenance);
    ADD_FAILURE() << "a NaN cache was reused";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": tensor 'block.1.input.2.sq_sum' contains NaN or Inf");
  }
}

TEST(NetworkProxy, ACacheHoldingImpossibleStatisticsIsRefused) {
  // Finite but impossible: a negative squared sum (its square root would be NaN in every score),
  // a token count that is not a whole number >= 1.
  c10::InferenceMode guard;
  test::TempDir dir;
  const std::string path = dir.file("stats.safetensors");
  {
    Fixture f({1}, 2);
    f.stats.blocks[0].inputs[0].sq_sum[3] = -1.0f;
    save_search_stats(path, f.stats);
    const std::string message = test::input_error_of([&] { load_search_stats(path, f.stats.provenance); });
    EXPECT_EQ(message, path + ": tensor 'block.1.input.0.sq_sum' is not a vector of squared sums (one per input, none negative)");
  }
  for (int64_t tokens : {int64_t{0}, int64_t{-5}}) {
    Fixture f({1}, 2);
    f.stats.blocks[0].inputs[1].tokens = tokens;
    save_search_stats(path, f.stats);
    const std::string message = test::input_error_of([&] { load_search_stats(path, f.stats.provenance); });
    EXPECT_EQ(message, path + ": tensor 'block.1.input.1.tokens' is not a token count (one whole number >= 1)") << tokens;
  }
}

TEST(NetworkProxy, SubsampleRoundTripsThroughTheStatisticsCache) {
  c10::InferenceMode guard;
  Fixture f({2, 4}, 2);
  ASSERT_EQ(f.stats.blocks[0].sample_input.sizes(), at::IntArrayRef({2, 24, f.ckpt.config().hidden_size}));
  test::TempDir dir;
  save_search_stats(dir.file("stats.safetensors"), f.stats);
  std::string why;
  const auto loaded = load_search_stats(dir.file("stats.safetensors"), f.stats.provenance, &why);
  ASSERT_TRUE(loaded.has_value()) << why;
  for (size_t b = 0; b < 2; ++b) {
    EXPECT_TRUE(at::equal(loaded->blocks[b].sample_input, f.stats.blocks[b].sample_input));
  }
  // The block-4 input is what blocks 0..3 make of the first sequences: check against the runner.
  engine::BlockRunner runner(f.ckpt, f.run);
  at::Tensor states = runner.embed(f.ids.narrow(0, 0, 2));
  for (int64_t b = 0; b < 4; ++b) runner.forward(f.ckpt.load_block(b, f.run.placement), states);
  EXPECT_LT((states.cpu() - f.stats.blocks[1].sample_input).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace crepe::search

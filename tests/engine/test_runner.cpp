#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "crepe/engine/runner.hpp"
#include "crepe/model/head.hpp"
#include "test_support.hpp"

namespace crepe::engine {
namespace {

at::Tensor random_ids(int64_t n, int64_t seq, int64_t vocab) {
  at::manual_seed(7);
  return at::randint(vocab, {n, seq}, at::TensorOptions().dtype(at::kLong));
}

TEST(BlockRunner, StreamsBlocksInOrderAndMatchesADirectForward) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  RunnerOptions options = test::test_runner_options();
  BlockRunner runner(ckpt, options);
  const at::Tensor ids = random_ids(5, 32, ckpt.config().vocab_size);

  at::Tensor states = runner.embed(ids);
  std::vector<int64_t> visited;
  runner.for_each_block(states, [&](int64_t b, model::BlockWeights& w, at::Tensor& s) {
    visited.push_back(b);
    runner.forward(w, s);
  });
  EXPECT_EQ(visited, (std::vector<int64_t>{0, 1, 2, 3, 4}));

  // The same computation with the model module alone, on the CPU.
  const Placement cpu;
  at::Tensor direct = model::embed_tokens(ckpt.load_embedding(cpu), ids);
  const auto rope = model::make_rope(ckpt.config(), 32, cpu.device, cpu.compute_dtype);
  for (int64_t b = 0; b < ckpt.num_layers(); ++b) direct = model::block_forward(ckpt.config(), ckpt.load_block(b, cpu), direct, rope);
  EXPECT_LT((states.cpu() - direct).abs().max().item<double>(), 1e-5 * (1 + direct.abs().max().item<double>()));
}

TEST(BlockRunner, StopsBeforeTheEndBlockWhenGiven) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  RunnerOptions options = test::test_runner_options();
  BlockRunner runner(ckpt, options);
  at::Tensor states = runner.embed(random_ids(2, 8, ckpt.config().vocab_size));
  std::vector<int64_t> visited;
  auto record = [&](int64_t b, model::BlockWeights& w, at::Tensor& s) {
    visited.push_back(b);
    runner.forward(w, s);
  };
  runner.for_each_block(states, record, 2);
  EXPECT_EQ(visited, (std::vector<int64_t>{0, 1}));
  visited.clear();
  runner.for_each_block(states, record, 99);  // past the model's depth: every block once
  EXPECT_EQ(visited, (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(BlockRunner, StatesPastTheDeviceBudgetStayOnTheHostWithTheSameResults) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  const at::Tensor ids = random_ids(7, 16, ckpt.config().vocab_size);
  RunnerOptions resident = test::test_runner_options();
  resident.batch_size = 3;  // 7 sequences: the host path embeds in three batches
  RunnerOptions hosted = resident;
  hosted.max_device_activation_bytes = 0;
  BlockRunner a(ckpt, resident), b(ckpt, hosted);
  at::Tensor sa = a.embed(ids), sb = b.embed(ids);
  EXPECT_TRUE(sb.device().is_cpu());
  EXPECT_TRUE(at::equal(sa.cpu(), sb));
  a.forward_all(sa);
  b.forward_all(sb);
  EXPECT_TRUE(at::equal(sa.cpu(), sb));
}

TEST(BlockRunner, PrefetchingTheNextBlockGivesTheSameResults) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  const at::Tensor ids = random_ids(4, 16, ckpt.config().vocab_size);
  RunnerOptions plain = test::test_runner_options();
  RunnerOptions prefetching = plain;
  prefetching.prefetch = true;
  BlockRunner a(ckpt, plain), b(ckpt, prefetching);
  at::Tensor sa = a.embed(ids), sb = b.embed(ids);
  std::vector<int64_t> visited;
  a.forward_all(sa);
  b.for_each_block(sb, [&](int64_t block, model::BlockWeights& w, at::Tensor& s) {
    visited.push_back(block);
    EXPECT_EQ(w[model::Linear::Down].weight.device(), plain.placement.device);
    b.forward(w, s);
  });
  EXPECT_EQ(visited, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(at::equal(sa, sb));
  // Stopping early leaves no staging behind (the last block staged is the last one visited).
  visited.clear();
  b.for_each_block(sb, [&](int64_t block, model::BlockWeights&, at::Tensor&) { visited.push_back(block); }, 2);
  EXPECT_EQ(visited, (std::vector<int64_t>{0, 1}));
}

TEST(BlockRunner, StagedAndUploadedBlockEqualsALoadedOne) {
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/mini-llama-6m"));
  const Placement placement = test::test_placement();
  const model::BlockWeights uploaded = io::Checkpoint::upload_block(ckpt.stage_block(1, placement), placement);
  // Against the stored tensors read directly and converted in one step.
  auto stored = [&](const std::string& name) {
    return ckpt.tensors().load(name).to(placement.device, placement.compute_dtype);
  };
  EXPECT_TRUE(at::equal(uploaded.input_norm, stored("model.layers.1.input_layernorm.weight")));
  for (model::Linear l : model::kLinears) {
    EXPECT_EQ(uploaded[l].weight.device(), placement.device);
    EXPECT_EQ(uploaded[l].weight.scalar_type(), placement.compute_dtype);
    EXPECT_TRUE(at::equal(uploaded[l].weight, stored(io::Checkpoint::linear_weight_name(1, l))));
  }
}

TEST(BlockRunner, BatchSizeDoesNotChangeResults) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  const at::Tensor ids = random_ids(6, 24, ckpt.config().vocab_size);
  RunnerOptions one = test::test_runner_options();
  one.batch_size = 1;
  RunnerOptions four = one;
  four.batch_size = 4;  // 6 sequences: a full batch and a partial one
  BlockRunner a(ckpt, one), b(ckpt, four);
  at::Tensor sa = a.embed(ids), sb = b.embed(ids);
  a.forward_all(sa);
  b.forward_all(sb);
  EXPECT_LT((sa - sb).abs().max().item<double>(), 1e-5);
}

TEST(BlockRunner, ObserverSeesEveryBatchOfEveryLinearInput) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  RunnerOptions options = test::test_runner_options();
  options.batch_size = 2;
  BlockRunner runner(ckpt, options);
  at::Tensor states = runner.embed(random_ids(5, 16, ckpt.config().vocab_size));
  int64_t tokens_seen = 0, calls = 0;
  model::InputObserver observer = [&](model::LinearInput which, const at::Tensor& x) {
    ++calls;
    if (which == model::LinearInput::MlpHidden) {
      EXPECT_EQ(x.size(-1), ckpt.config().intermediate_size);
      tokens_seen += x.size(0) * x.size(1);
    }
  };
  runner.forward(ckpt.load_block(0, options.placement), states, &observer);
  EXPECT_EQ(calls, 3 * 4);  // batches of 2, 2, 1; four distinct inputs each
  EXPECT_EQ(tokens_seen, 5 * 16);
}

TEST(BlockRunner, HostStatesArePinnedOnlyWhenThePowerOfTwoRoundingWastesAtMostAQuarter) {
  EXPECT_TRUE(worth_pinning(int64_t{1} << 30));             // exactly a power of two
  // 0.8 GiB = 858993459.2 bytes is where rounding up to 1 GiB wastes exactly a quarter.
  EXPECT_TRUE(worth_pinning(858993460));
  EXPECT_FALSE(worth_pinning(858993459));
  EXPECT_FALSE(worth_pinning((int64_t{20}) << 30));         // 20 GiB would lock 32 GiB
  EXPECT_TRUE(worth_pinning((int64_t{28}) << 30));          // 28 GiB of 32
  EXPECT_TRUE(worth_pinning(7));                            // 7 of 8 bytes
}

TEST(BlockRunner, AutomaticBatchSizeShrinksWithSequenceLength) {
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/mini-llama-6m"));
  BlockRunner runner(ckpt, test::test_runner_options());
  EXPECT_GE(runner.batch_size(128), runner.batch_size(2048));
  EXPECT_GE(runner.batch_size(2048), 1);
}

}  // namespace
}  // namespace crepe::engine

// Properties of the decoder block that reference logits alone would not pin down.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>

#include "crepe/model/block.hpp"

namespace crepe::model {
namespace {

ModelConfig small_config(int64_t heads, int64_t kv_heads) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_layers = 1;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 32 / heads;
  c.vocab_size = 16;
  c.rms_norm_eps = 1e-5;
  return c;
}

BlockWeights random_block(const ModelConfig& c, uint64_t seed) {
  at::manual_seed(seed);
  BlockWeights w;
  w.input_norm = 1 + 0.1 * at::randn({c.hidden_size});
  w.post_attention_norm = 1 + 0.1 * at::randn({c.hidden_size});
  w[Linear::Q].weight = at::randn({c.q_size(), c.hidden_size}) * 0.2;
  w[Linear::K].weight = at::randn({c.kv_size(), c.hidden_size}) * 0.2;
  w[Linear::V].weight = at::randn({c.kv_size(), c.hidden_size}) * 0.2;
  w[Linear::O].weight = at::randn({c.hidden_size, c.q_size()}) * 0.2;
  w[Linear::Gate].weight = at::randn({c.intermediate_size, c.hidden_size}) * 0.2;
  w[Linear::Up].weight = at::randn({c.intermediate_size, c.hidden_size}) * 0.2;
  w[Linear::Down].weight = at::randn({c.hidden_size, c.intermediate_size}) * 0.2;
  return w;
}

TEST(Block, GroupedQueryAttentionEqualsRepeatedKvHeads) {
  c10::InferenceMode guard;
  // Hugging Face's repeat_kv: KV head j serves query heads j*group .. j*group+group-1.
  const ModelConfig gqa = small_config(4, 2);
  const ModelConfig mha = small_config(4, 4);
  BlockWeights w = random_block(gqa, 1);
  BlockWeights repeated = w;
  for (Linear l : {Linear::K, Linear::V}) {
    repeated[l].weight = w[l].weight.view({2, 1, gqa.head_dim, gqa.hidden_size})
                             .expand({2, 2, gqa.head_dim, gqa.hidden_size})
                             .reshape({4 * gqa.head_dim, gqa.hidden_size});
  }
  at::Tensor x = at::randn({2, 7, 32});
  const Rope rope = make_rope(gqa, 7, at::kCPU, at::kFloat);
  at::Tensor a = block_forward(gqa, w, x, rope);
  at::Tensor b = block_forward(mha, repeated, x, rope);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
}

TEST(Block, AttentionIsCausal) {
  c10::InferenceMode guard;
  const ModelConfig c = small_config(4, 2);
  BlockWeights w = random_block(c, 2);
  at::Tensor x = at::randn({1, 9, 32});
  at::Tensor changed = x.clone();
  changed[0][6] += 1.0;
  const Rope rope = make_rope(c, 9, at::kCPU, at::kFloat);
  at::Tensor a = block_forward(c, w, x, rope), b = block_forward(c, w, changed, rope);
  EXPECT_LT((a.narrow(1, 0, 6) - b.narrow(1, 0, 6)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((a.narrow(1, 6, 3) - b.narrow(1, 6, 3)).abs().max().item<double>(), 1e-3);
}

TEST(Block, SlidingWindowForgetsTokensOutsideIt) {
  c10::InferenceMode guard;
  ModelConfig c = small_config(4, 2);
  c.sliding_window = 3;  // position t sees t-2..t
  BlockWeights w = random_block(c, 3);
  at::Tensor x = at::randn({1, 8, 32});
  at::Tensor changed = x.clone();
  changed[0][2] += 1.0;
  const Rope rope = make_rope(c, 8, at::kCPU, at::kFloat);
  at::Tensor a = block_forward(c, w, x, rope), b = block_forward(c, w, changed, rope);
  EXPECT_GT((a[0][4] - b[0][4]).abs().max().item<double>(), 1e-4);  // 2 is inside 4's window
  EXPECT_LT((a[0][5] - b[0][5]).abs().max().item<double>(), 1e-6);  // 2 is outside 5's window
}

TEST(Block, TheWindowIsThatOfTheBlocksOwnLayer) {
  // Layer 0 attends to everything, layer 1 through a window of 3 (Qwen2's max_window_layers = 1).
  c10::InferenceMode guard;
  ModelConfig c = small_config(4, 2);
  c.sliding_window = 3;
  c.windowed_layers = {false, true};
  BlockWeights w = random_block(c, 3);
  at::Tensor x = at::randn({1, 8, 32});
  at::Tensor changed = x.clone();
  changed[0][2] += 1.0;
  const Rope rope = make_rope(c, 8, at::kCPU, at::kFloat);
  for (int64_t layer : {0, 1}) {
    w.block = layer;
    at::Tensor a = block_forward(c, w, x, rope), b = block_forward(c, w, changed, rope);
    const double far = (a[0][5] - b[0][5]).abs().max().item<double>();  // 2 is outside 5's window
    if (layer == 0) EXPECT_GT(far, 1e-4);
    else EXPECT_LT(far, 1e-6);
  }
}

TEST(Block, ObserverSeesEachDistinctLinearInputOnce) {
  c10::InferenceMode guard;
  const ModelConfig c = small_config(4, 2);
  BlockWeights w = random_block(c, 4);
  std::vector<std::pair<LinearInput, std::vector<int64_t>>> seen;
  InputObserver observer = [&](LinearInput which, const at::Tensor& x) {
    seen.emplace_back(which, x.sizes().vec());
  };
  block_forward(c, w, at::randn({3, 5, 32}), make_rope(c, 5, at::kCPU, at::kFloat), &observer);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].first, LinearInput::AttentionIn);
  EXPECT_EQ(seen[1].first, LinearInput::AttentionOut);
  EXPECT_EQ(seen[2].first, LinearInput::MlpIn);
  EXPECT_EQ(seen[3].first, LinearInput::MlpHidden);
  EXPECT_EQ(seen[3].second, (std::vector<int64_t>{3, 5, 48}));
  for (Linear l : kLinears) {
    const int64_t in_width = w[l].weight.size(1);
    EXPECT_EQ(seen[static_cast<int>(input_of(l))].second.back(), in_width) << short_name(l);
  }
}

TEST(Rope, RotatesPairsHalfADimensionApart) {
  c10::InferenceMode guard;
  ModelConfig c = small_config(4, 4);  // head_dim 8
  c.rope_theta = 10000.0;
  const Rope rope = make_rope(c, 3, at::kCPU, at::kDouble);
  for (int64_t i = 0; i < 4; ++i) {
    const double inv_freq = 1.0 / std::pow(10000.0, 2.0 * i / 8.0);
    EXPECT_NEAR(rope.cos[2][i].item<double>(), std::cos(2 * inv_freq), 1e-12);
    EXPECT_NEAR(rope.cos[2][i + 4].item<double>(), std::cos(2 * inv_freq), 1e-12);
    EXPECT_NEAR(rope.sin[2][i + 4].item<double>(), std::sin(2 * inv_freq), 1e-12);
  }
}

TEST(Rope, Llama3ScalingMatchesTransformersFormula) {
  c10::InferenceMode guard;
  ModelConfig c = small_config(2, 2);  // head_dim 16
  c.rope_theta = 500000.0;
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 8192;
  // transformers' _compute_llama3_parameters, evaluated independently in Python (float64):
  // high frequencies kept, index 4 blended, 5..7 divided by the factor.
  const std::vector<double> expected = {1.0, 0.19392274474868576, 0.03760603093086393, 0.0072926647372171085,
                                        0.0005248461609929547, 3.428102195952591e-05, 6.647869871181236e-06,
                                        1.2891731721515574e-06};
  const Rope rope = make_rope(c, 2, at::kCPU, at::kDouble);
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(rope.sin[1][i].item<double>(), std::sin(expected[i]), 1e-15) << i;
  }
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 4;
  const Rope linear = make_rope(c, 2, at::kCPU, at::kDouble);
  EXPECT_NEAR(linear.sin[1][1].item<double>(), std::sin(0.19392274474868576 / 4), 1e-15);
}

TEST(RmsNorm, MatchesDefinition) {
  at::Tensor x = at::tensor({3.0, 4.0}, at::kFloat);
  at::Tensor w = at::tensor({2.0, 0.5}, at::kFloat);
  at::Tensor y = rms_norm(x, w, 0.0);
  const double rms = std::sqrt((9.0 + 16.0) / 2.0);
  EXPECT_NEAR(y[0].item<double>(), 2.0 * 3.0 / rms, 1e-6);
  EXPECT_NEAR(y[1].item<double>(), 0.5 * 4.0 / rms, 1e-6);
}

}  // namespace
}  // namespace crepe::model

namespace crepe::model {
namespace {

TEST(Block, DecodingWithKvCacheEqualsTheFullForward) {
  c10::InferenceMode guard;
  ModelConfig c = small_config(4, 2);
  for (int64_t window : {0, 3}) {
    c.sliding_window = window;
    BlockWeights w = random_block(c, 5);
    at::Tensor x = at::randn({2, 7, 32});
    const Rope rope = make_rope(c, 7, at::kCPU, at::kFloat);
    at::Tensor full = block_forward(c, w, x, rope);
    KvCache cache = KvCache::allocate(c, 2, 7, x.options());
    at::Tensor first = block_decode(c, w, x.narrow(1, 0, 3), rope, cache);  // a prompt of 3, then one at a time
    std::vector<at::Tensor> parts = {first};
    for (int64_t t = 3; t < 7; ++t) parts.push_back(block_decode(c, w, x.narrow(1, t, 1), rope, cache));
    EXPECT_EQ(cache.length, 7);
    EXPECT_LT((at::cat(parts, 1) - full).abs().max().item<double>(), 1e-5) << "window " << window;
  }
}

}  // namespace
}  // namespace crepe::model

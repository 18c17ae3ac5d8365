// The forward pass against reference.json: logits and losses of an independent float64
// implementation of the Hugging Face LlamaForCausalLM math, for both shared checkpoints.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "crepe/io/checkpoint.hpp"
#include "crepe/model/block.hpp"
#include "crepe/model/head.hpp"
#include "test_support.hpp"

namespace crepe {
namespace {

nlohmann::json load_reference(const std::string& model) {
  std::ifstream in(test::shared_path("models/" + model + "/reference.json"));
  return nlohmann::json::parse(in);
}

at::Tensor ids_tensor(const nlohmann::json& ids) {
  std::vector<int64_t> values = ids.get<std::vector<int64_t>>();
  return at::tensor(values, at::kLong).unsqueeze(0);
}

at::Tensor doubles(const nlohmann::json& values) {
  return at::tensor(values.get<std::vector<double>>(), at::kDouble);
}

// Runs the whole model directly through the model module (no engine) in float32 on the test device.
at::Tensor forward_logits(const io::Checkpoint& ckpt, const at::Tensor& cpu_ids) {
  c10::InferenceMode guard;
  const Placement placement = test::test_placement();
  const auto& config = ckpt.config();
  const at::Tensor ids = cpu_ids.to(placement.device);
  at::Tensor hidden = model::embed_tokens(ckpt.load_embedding(placement), ids);
  const model::Rope rope = model::make_rope(config, ids.size(1), placement.device, placement.compute_dtype);
  for (int64_t b = 0; b < config.num_layers; ++b) {
    hidden = model::block_forward(config, ckpt.load_block(b, placement), hidden, rope);
  }
  return model::output_logits(config, ckpt.load_final_norm(placement), ckpt.load_lm_head(placement), hidden).cpu();
}

class ForwardReference : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardReference, LogitsAndLossesMatchFloat64Reference) {
  const auto reference = load_reference(GetParam());
  const auto& prompt = reference.at("prompt64");
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/" + GetParam()));
  const at::Tensor ids = ids_tensor(prompt.at("input_ids"));
  const at::Tensor logits = forward_logits(ckpt, ids).to(at::kDouble)[0];

  const double first_error = (logits[0] - doubles(prompt.at("logits_first"))).abs().max().item<double>();
  const double last_error = (logits[-1] - doubles(prompt.at("logits_last"))).abs().max().item<double>();
  EXPECT_LT(first_error, 1e-4);
  EXPECT_LT(last_error, 1e-4);

  const auto expected_argmax = prompt.at("argmax_per_position").get<std::vector<int64_t>>();
  const at::Tensor argmax = logits.argmax(-1);
  for (size_t t = 0; t < expected_argmax.size(); ++t) {
    EXPECT_EQ(argmax[t].item<int64_t>(), expected_argmax[t]) << "position " << t;
  }

  const at::Tensor nll = model::next_token_nll(logits.unsqueeze(0), ids)[0];
  const double nll_error = (nll - doubles(prompt.at("nll_per_position"))).abs().max().item<double>();
  EXPECT_LT(nll_error, 1e-4);
  EXPECT_NEAR(nll.mean().item<double>(), prompt.at("mean_loss").get<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(SharedModels, ForwardReference, ::testing::Values("stories260k", "mini-llama-6m"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace crepe

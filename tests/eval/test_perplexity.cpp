// Perplexity against the float64 reference losses, and the windowing protocol end to end.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "crepe/eval/perplexity.hpp"
#include "crepe/model/head.hpp"
#include "crepe/text/corpus.hpp"
#include "test_support.hpp"

namespace crepe::eval {
namespace {

nlohmann::json reference(const std::string& model) {
  std::ifstream in(test::shared_path("models/" + model + "/reference.json"));
  return nlohmann::json::parse(in);
}

at::Tensor first_ids(const nlohmann::json& ref, int64_t n) {
  auto ids = ref.at("inputs").at("input_ids").get<std::vector<int64_t>>();
  ids.resize(n);
  return at::tensor(ids, at::kLong).unsqueeze(0);
}

TEST(Perplexity, MatchesReferenceLossOverOneWindow) {
  struct Case {
    std::string model, key;
    int64_t tokens;
  };
  for (const Case& c : {Case{"stories260k", "eval256", 256}, Case{"stories260k", "eval512", 512},
                        Case{"mini-llama-6m", "eval256", 256}}) {
    const auto ref = reference(c.model);
    const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/" + c.model));
    const PerplexityResult r = perplexity(ckpt, first_ids(ref, c.tokens), test::test_runner_options());
    const double expected_loss = ref.at(c.key).at("mean_loss").get<double>();
    EXPECT_NEAR(r.mean_nll, expected_loss, 2e-5) << c.model << " " << c.key;
    EXPECT_NEAR(r.perplexity, ref.at(c.key).at("perplexity").get<double>(), 1e-4 * r.perplexity);
    EXPECT_EQ(r.predictions, c.tokens - 1);
  }
}

TEST(Perplexity, IsExpOfMeanOverWindowsScoredIndependently) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  at::manual_seed(3);
  const at::Tensor windows = at::randint(512, {3, 40}, at::TensorOptions().dtype(at::kLong));
  const PerplexityResult together = perplexity(ckpt, windows, test::test_runner_options());
  double nll_sum = 0;
  for (int64_t w = 0; w < 3; ++w) {
    const PerplexityResult alone = perplexity(ckpt, windows.narrow(0, w, 1), test::test_runner_options());
    // 1e-5: on a GPU the two batch shapes may take different matmul kernels.
    EXPECT_NEAR(together.window_nll[w].item<double>(), alone.mean_nll, 1e-5 * alone.mean_nll);
    nll_sum += alone.mean_nll * 39;
  }
  EXPECT_NEAR(together.perplexity, std::exp(nll_sum / (3 * 39)), 1e-5 * together.perplexity);
  EXPECT_EQ(together.predictions, 3 * 39);
}

}  // namespace
}  // namespace crepe::eval

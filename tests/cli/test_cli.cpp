// The crepe binary as a user runs it: results on stdout, logs on stderr, exit codes.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "crepe/cli/shared_steps.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/model/block.hpp"
#include "crepe/model/head.hpp"
#include "crepe/text/corpus.hpp"
#include "test_support.hpp"

namespace crepe {
namespace {

using test::run_crepe;
using test::shared_path;

// Perplexity computed here without the engine, eval module or CLI: tokenize the whole file with
// the SentencePiece library's ids, cut windows by hand, run the model module window by window.
double independent_perplexity(const std::string& model_dir, const std::string& data, int64_t seqlen, int64_t windows) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(model_dir);
  const auto tokenizer = text::load_tokenizer(model_dir);
  std::vector<int32_t> ids = tokenizer->encode(text::read_text_file(data));
  ids.insert(ids.begin(), tokenizer->bos_id());
  const Placement cpu;
  const auto& config = ckpt.config();
  const auto rope = model::make_rope(config, seqlen, cpu.device, cpu.compute_dtype);
  double nll_sum = 0;
  for (int64_t w = 0; w < windows; ++w) {
    std::vector<int64_t> window(ids.begin() + w * seqlen, ids.begin() + (w + 1) * seqlen);
    at::Tensor input = at::tensor(window, at::kLong).unsqueeze(0);
    at::Tensor hidden = model::embed_tokens(ckpt.load_embedding(cpu), input);
    for (int64_t b = 0; b < config.num_layers; ++b) hidden = model::block_forward(config, ckpt.load_block(b, cpu), hidden, rope);
    at::Tensor logits = model::output_logits(config, ckpt.load_final_norm(cpu), ckpt.load_lm_head(cpu), hidden);
    nll_sum += model::next_token_nll(logits, input).sum().item<double>();
  }
  return std::exp(nll_sum / static_cast<double>(windows * (seqlen - 1)));
}

struct EvalCase {
  std::string model;
  int64_t windows;
};

void PrintTo(const EvalCase& c, std::ostream* os) { *os << c.model << " x" << c.windows; }

class EvalEndToEnd : public ::testing::TestWithParam<EvalCase> {};

TEST_P(EvalEndToEnd, WikiText2PerplexityMatchesIndependentComputation) {
  const EvalCase c = GetParam();
  const std::string model = shared_path("models/" + c.model);
  const std::string data = shared_path("data/wikitext2-test.txt");
  const auto result = run_crepe({"eval", "--model", model, "--data", data, "--seqlen", "256", "--max-windows",
                                 std::to_string(c.windows), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto j = nlohmann::json::parse(result.out);  // stdout is exactly one JSON document
  EXPECT_EQ(j.at("windows").get<int64_t>(), c.windows);
  EXPECT_EQ(j.at("seqlen").get<int64_t>(), 256);
  EXPECT_EQ(j.at("predictions").get<int64_t>(), c.windows * 255);
  const double expected = independent_perplexity(model, data, 256, c.windows);
  EXPECT_NEAR(j.at("perplexity").get<double>(), expected, 1e-4 * expected);
  EXPECT_NE(result.err.find("eval:"), std::string::npos);  // logging went to stderr
}

INSTANTIATE_TEST_SUITE_P(SharedModels, EvalEndToEnd,
                         ::testing::Values(EvalCase{"stories260k", 12}, EvalCase{"mini-llama-6m", 12}),
                         [](const auto& info) { return info.index == 0 ? std::string("stories260k") : std::string("mini_llama_6m"); });

TEST(Cli, EvalPlainOutputIsOneSummaryLine) {
  const auto result = run_crepe({"eval", "--model", shared_path("models/stories260k"), "--data",
                                 shared_path("data/tinystories-val.txt"), "--seqlen", "128", "--max-windows", "2", "-q"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out.rfind("perplexity ", 0), 0u);
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 1);
}

TEST(Cli, InspectReportsArchitectureAndCounts) {
  const auto result = run_crepe({"inspect", "--model", shared_path("models/mini-llama-6m"), "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto j = nlohmann::json::parse(result.out);
  EXPECT_EQ(j.at("architecture"), "LlamaForCausalLM");
  EXPECT_EQ(j.at("layers"), 6);
  EXPECT_EQ(j.at("kv_heads"), 4);
  EXPECT_EQ(j.at("parameters").get<int64_t>(), 6524160);  // the model card's count
  // 42 prunable linear layers: 6 x (3 x 256x256 + ... ) as the card says, 4.42M.
  EXPECT_EQ(j.at("prunable_parameters").get<int64_t>(), 6 * (256 * 256 * 2 + 128 * 256 * 2 + 3 * 704 * 256));
  EXPECT_EQ(j.at("parameters_by_dtype").at("BF16").get<int64_t>(), 6524160);
  EXPECT_EQ(j.at("shards").size(), 1u);
  // The plain summary rounds the counts to two decimals of a million, not down to one.
  const auto plain = run_crepe({"inspect", "--model", shared_path("models/stories260k")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.out.find("260032 (0.26M)"), std::string::npos) << plain.out;
}

TEST(Cli, BadInputGivesOneLineAndExitCode2) {
  test::TempDir dir;
  const auto missing = run_crepe({"eval", "--model", dir.file("nope"), "--data", shared_path("data/wikitext2-test.txt")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find(dir.file("nope")), std::string::npos);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;

  test::write_file(dir.file("config.json"), "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64");
  const auto bad_json = run_crepe({"inspect", "--model", dir.path()});
  EXPECT_EQ(bad_json.exit_code, 2);
  EXPECT_NE(bad_json.err.find("config.json"), std::string::npos);

  const auto bad_option = run_crepe({"eval", "--model", shared_path("models/stories260k"), "--data",
                                     shared_path("data/wikitext2-test.txt"), "--device", "tpu"});
  EXPECT_EQ(bad_option.exit_code, 2);
  EXPECT_NE(bad_option.err.find("--device"), std::string::npos);

  const auto unknown = run_crepe({"frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown.err;
  const auto bogus = run_crepe({"--bogus"});
  EXPECT_EQ(bogus.exit_code, 2);
  EXPECT_NE(bogus.err.find("unknown option '--bogus'"), std::string::npos) << bogus.err;

  const auto short_text = run_crepe({"eval", "--model", shared_path("models/stories260k"), "--data",
                                     shared_path("models/stories260k/generation_config.json"), "--seqlen", "256"});
  EXPECT_EQ(short_text.exit_code, 2);
  EXPECT_NE(short_text.err.find("generation_config.json"), std::string::npos);
}

TEST(SharedSteps, TargetSparsityIsNOverMOrTheOptionAndNeverMinusZero) {
  EXPECT_DOUBLE_EQ(cli::target_sparsity(prune::parse_pattern("2:4"), 0.7), 0.5);
  EXPECT_DOUBLE_EQ(cli::target_sparsity(prune::parse_pattern("unstructured"), 0.7), 0.7);
  const double zero = cli::target_sparsity(prune::parse_pattern("unstructured"), -0.0);
  EXPECT_EQ(zero, 0.0);
  EXPECT_FALSE(std::signbit(zero));  // a report says 0.0, not -0.0
}

TEST(Cli, VersionAndHelpExitZero) {
  EXPECT_EQ(run_crepe({"--version"}).exit_code, 0);
  const auto help = run_crepe({"eval", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--max-windows"), std::string::npos);
}

}  // namespace
}  // namespace crepe

// `crepe eval`: perplexity of a checkpoint on a text file, the WikiText-2 protocol.
#include <CLI/CLI.hpp>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <limits>
#include <memory>

#include "crepe/cli/commands.hpp"
#include "crepe/cli/shared_steps.hpp"
#include "crepe/core/error.hpp"
#include "crepe/eval/perplexity.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/text/corpus.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::cli {
namespace {

struct EvalOptions {
  std::string model;
  std::string data;
  int64_t seqlen = 2048;
  int64_t max_windows = 0;
  bool json = false;
  std::string tokenizer_kind = "auto";
  bool check_finite = false;
  DeviceOptions device;
};

}  // namespace

Action add_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand("eval", "Perplexity on a text file (non-overlapping windows, as in the pruning literature)");
  cmd->add_option("--model", options->model, "Hugging Face model directory")->required();
  cmd->add_option("--data", options->data, "text file, e.g. WikiText-2 test joined with \"\\n\\n\"")->required();
  cmd->add_option("--seqlen", options->seqlen, "tokens per window (capped at the model's context)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--max-windows", options->max_windows, "evaluate only the first N windows (0: all)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  cmd->add_option("--tokenizer-kind", options->tokenizer_kind,
                  "auto (tokenizer.json when present, else tokenizer.model), json or model")->capture_default_str();
  cmd->add_flag("--json", options->json, "print one JSON document with the results on stdout");
  cmd->add_flag("--check-finite", options->check_finite,
                "refuse a checkpoint whose weights hold NaN or Inf (reads every tensor once first)");
  add_device_options(*cmd, options->device);

  return [options]() {
    c10::InferenceMode inference;
    engine::RunnerOptions run = runner_options(options->device);  // checks --device/--dtype first
    const io::Checkpoint ckpt = io::Checkpoint::open(options->model);
    if (options->check_finite) ckpt.check_finite();
    const auto tokenizer = model_tokenizer(ckpt, options->tokenizer_kind);
    const int64_t seqlen = capped_seqlen(options->seqlen, ckpt, "--seqlen");
    const text::EvalWindows windows = held_out_windows(*tokenizer, options->data, seqlen, options->max_windows);
    run.progress_label = "eval";
    const eval::PerplexityResult result = eval::perplexity(ckpt, windows.ids, run);
    if (options->json) {
      nlohmann::ordered_json j;
      j["model"] = options->model;
      j["data"] = options->data;
      j["perplexity"] = result.perplexity;
      j["mean_nll"] = result.mean_nll;
      j["windows"] = result.windows;
      j["seqlen"] = result.seqlen;
      j["predictions"] = result.predictions;
      j["file_tokens"] = windows.total_tokens;
      j["device"] = options->device.device;
      j["dtype"] = options->device.dtype;
      j["seconds"] = result.seconds;
      j["tokens_per_second"] = result.windows * result.seqlen / std::max(result.seconds, 1e-9);
      print_json(j.dump(2));
    } else {
      std::printf("perplexity %.4f  (%s on %s: %lld windows x %lld tokens, %.2f s)\n", result.perplexity,
                  options->model.c_str(), options->data.c_str(), static_cast<long long>(result.windows),
                  static_cast<long long>(result.seqlen), result.seconds);
    }
    return 0;
  };
}

}  // namespace crepe::cli

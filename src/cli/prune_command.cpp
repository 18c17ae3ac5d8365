// `crepe prune`: calibrate, prune every linear layer block by block, write a checkpoint that loads
// like the original, and say what was done (crepe_report.json, one summary line or --json).
#include <CLI/CLI.hpp>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "crepe/cli/commands.hpp"
#include "crepe/cli/config_file.hpp"
#include "crepe/cli/shared_steps.hpp"
#include "crepe/core/error.hpp"
#include "crepe/core/parse.hpp"
#include "crepe/engine/generate.hpp"
#include "crepe/eval/perplexity.hpp"
#include "crepe/core/interrupt.hpp"
#include "crepe/io/checkpoint_writer.hpp"
#include "crepe/io/model_card.hpp"
#include "crepe/io/output_paths.hpp"
#include "crepe/io/partial_run.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/permutation_file.hpp"
#include "crepe/prune/pipeline.hpp"
#include "crepe/text/corpus.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::ordered_json;

struct PruneOptions {
  std::string model, out, config;
  bool force = false;
  std::string method = "crepe";
  double sparsity = 0.5;
  std::string pattern = "unstructured";
  std::string group;  // empty: the method's own default
  int64_t kernel_size = prune::crepe_defaults().kernel_size;
  double alpha = prune::crepe_defaults().alpha, beta = prune::crepe_defaults().beta;
  double gamma = prune::crepe_defaults().gamma, act_power = prune::crepe_defaults().act_power;
  std::string calib_data;
  std::string tokenizer_kind = "auto";
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 0;
  bool permute = false;
  // The defaults of the composition options are their modules' own.
  int64_t permute_blocks = prune::PermutationOptions{}.blocks;
  int64_t permute_sweeps = prune::PermutationOptions{}.max_sweeps;
  std::string allocation = "uniform";
  double owl_m = prune::AllocationParams{}.owl_m, owl_lambda = prune::AllocationParams{}.owl_lambda;
  double alpha_eps = prune::AllocationParams{}.alpha_eps, dlp_alpha = prune::AllocationParams{}.dlp_alpha;
  std::string reprune = "none";
  int64_t dsnot_cycles = prune::DsnotOptions{}.cycles;
  double dsnot_threshold = prune::DsnotOptions{}.threshold;
  std::string dsnot_skip = prune::dsnot_skip_name(prune::DsnotOptions{}.skip);
  bool reconstruct = false;
  std::string eval_data;
  int64_t eval_seqlen = 2048;
  int64_t eval_max_windows = 0;
  bool json = false;
  bool resume = false;
  bool check_finite = false;
  std::string base_model;  // empty: told from the checkpoint (io::base_model_of); "none": no base_model key
  DeviceOptions device;
};

double since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Wanda compares weights within each output row; RIA, CRePE and the rest within the whole matrix.
prune::Group default_group(prune::Metric metric) {
  return metric == prune::Metric::Wanda ? prune::Group::Row : prune::Group::Layer;
}

prune::PruneConfig prune_config(const PruneOptions& o) {
  prune::PruneConfig c;
  c.metric = prune::parse_metric(o.method);
  c.mask.pattern = prune::parse_pattern(o.pattern);
  c.mask.sparsity = target_sparsity(c.mask.pattern, o.sparsity);
  c.mask.group = o.group.empty() ? default_group(c.metric) : prune::parse_group(o.group);
  // SparseGPT compares each 128-column block as a whole, as its reference does; --group is warned
  // about as unused (warn_about_unused_options), so it must not change the mask either.
  if (c.metric == prune::Metric::SparseGPT) c.mask.group = prune::Group::Layer;
  c.crepe.kernel_size = o.kernel_size;
  c.crepe.alpha = o.alpha;
  c.crepe.beta = o.beta;
  c.crepe.gamma = o.gamma;
  c.crepe.act_power = o.act_power;
  c.permute = o.permute;
  c.permutation.blocks = o.permute_blocks;
  c.permutation.max_sweeps = o.permute_sweeps;
  c.allocation = prune::parse_allocation(o.allocation);
  c.allocation_params = {o.owl_m, o.owl_lambda, o.alpha_eps, o.dlp_alpha};
  c.reprune = prune::parse_reprune(o.reprune);
  c.dsnot.cycles = o.dsnot_cycles;
  c.dsnot.threshold = o.dsnot_threshold;
  c.dsnot.skip = prune::parse_dsnot_skip(o.dsnot_skip);
  c.reconstruct = o.reconstruct;
  require(o.sparsity >= 0 && o.sparsity < 1, "--sparsity", "must be in [0, 1), got " + number_text(o.sparsity));
  prune::validate(c);
  return c;
}

// The mask's shape and what composes with the method, for the log, the summary line and the card:
// "unstructured, group layer, allocation owl, DSnoT re-pruning" or "2:4, channel permutation" (an
// N:M mask has no comparison group).
std::string mask_description(const prune::PruneConfig& c) {
  std::string text = c.mask.pattern.str();
  if (!c.mask.pattern.structured()) text += std::string(", group ") + prune::group_name(c.mask.group);
  if (c.allocation != prune::Allocation::Uniform) text += std::string(", allocation ") + prune::allocation_name(c.allocation);
  if (c.permute) text += ", channel permutation";
  if (c.reprune == prune::Reprune::Dsnot) text += ", DSnoT re-pruning";
  if (c.reconstruct) text += ", reconstructed";
  return text;
}

// Options given (on the command line or in --config) that this configuration never reads: a warning
// each, since a user who set them expects them to matter.
void warn_about_unused_options(const CLI::App& cmd, const prune::PruneConfig& c, const PruneOptions& o) {
  struct Unused {
    bool when;
    std::vector<const char*> options;
    std::string why;
  };
  const std::string method = prune::metric_name(c.metric);
  const bool nm = c.mask.pattern.structured();
  const Unused rules[] = {
      {c.metric != prune::Metric::Crepe, {"--kernel-size", "--alpha", "--beta", "--gamma"}, "with --method " + method},
      {c.metric != prune::Metric::Crepe && c.metric != prune::Metric::RIA, {"--act-power"},
       "with --method " + method + " (only ria and crepe take an activation exponent)"},
      {nm, {"--group"}, "with --pattern " + c.mask.pattern.str() + " (an N:M mask is chosen within each run of M inputs)"},
      {!nm && c.metric == prune::Metric::SparseGPT, {"--group"}, "with --method sparsegpt (it chooses its mask per 128-column block)"},
      {c.allocation != prune::Allocation::Owl, {"--owl-m", "--owl-lambda"}, "without --allocation owl"},
      {c.allocation != prune::Allocation::Alpha, {"--alpha-eps"}, "without --allocation alpha"},
      {c.allocation != prune::Allocation::Dlp, {"--dlp-alpha"}, "without --allocation dlp"},
      {!c.permute, {"--permute-blocks", "--permute-sweeps"}, "without --permute"},
      {c.reprune != prune::Reprune::Dsnot, {"--dsnot-cycles", "--dsnot-threshold", "--dsnot-skip"}, "without --reprune dsnot"},
      {o.eval_data.empty(), {"--eval-seqlen", "--eval-max-windows"}, "without --eval"},
      {!prune::needs_calibration(c), {"--calib-data", "--nsamples", "--seqlen", "--seed"},
       "with --method " + method + " (it uses no calibration activations)"},
  };
  for (const Unused& rule : rules) {
    if (!rule.when) continue;
    for (const char* option : rule.options) {
      if (cmd.count(option) > 0) spdlog::warn("{} has no effect {}; ignored", option, rule.why);
    }
  }
}

// The output's README.md (io::pruned_model_card): what was done, then the source's own card.
std::string model_card(const io::Checkpoint& ckpt, const prune::PruneConfig& config, const prune::PruneOutcome& outcome,
                       const ordered_json& calibration, const std::string& base_model) {
  io::ModelCardFacts facts = io::source_card_facts(ckpt.dir());
  if (base_model == "none") facts.base_model.clear();
  else if (!base_model.empty()) facts.base_model = base_model;
  std::string source = calibration.value("source", "");
  if (source == "file") source = "`" + std::filesystem::path(calibration.value("data", "")).filename().string() + "`";
  if (source == "self-generated") source = "text the model generated itself";
  std::ostringstream what;
  what << "`" << facts.model_name << "` with " << std::fixed << std::setprecision(2) << 100.0 * outcome.sparsity()
       << "% of the weights of its decoder blocks' linear layers set to zero by crepe, with no retraining: method "
       << prune::metric_name(config.metric) << " (" << mask_description(config) << ")";
  // A source that was sparse already (pruned before, or zeros of its own): say what the weights hold.
  if (outcome.zero_fraction() - outcome.sparsity() >= 5e-5) {
    what << "; with the zeros the source already had, " << 100.0 * outcome.zero_fraction() << "% of them are zero";
  }
  if (source != "none") what << ", calibrated on " << source;
  if (config.metric == prune::Metric::SparseGPT || config.reconstruct) {
    what << "; the remaining weights of those layers were updated to compensate (SparseGPT's reconstruction)";
  }
  what << ". Tensor names, shapes, dtypes and shards are the original's. `" << io::kReportFileName
       << "` records the hyperparameters, the calibration and each tensor's sparsity";
  if (config.permute) {
    what << "; `" << prune::kPermutationFileName << "` the input order in which each layer is " << config.mask.pattern.str();
  }
  what << ".";
  facts.what_was_done = what.str();
  return io::pruned_model_card(facts);
}

struct Calibration {
  at::Tensor ids;
  ordered_json report;
};

Calibration calibrate(const PruneOptions& o, const io::Checkpoint& ckpt, const prune::PruneConfig& config,
                      const Placement& placement) {
  Calibration cal;
  if (!prune::needs_calibration(config)) {
    cal.report = {{"source", "none"}, {"reason", std::string(prune::metric_name(config.metric)) + " uses no activations"}};
    return cal;
  }
  const int64_t seqlen = capped_seqlen(o.seqlen, ckpt, "--seqlen");
  check_calibration_fits(o.nsamples, seqlen, ckpt, placement.compute_dtype);
  if (!o.calib_data.empty()) {
    const auto tokenizer = model_tokenizer(ckpt, o.tokenizer_kind);
    const auto documents = text::read_documents(o.calib_data);
    const text::CalibrationSet set = text::sample_calibration(documents, *tokenizer, o.nsamples, seqlen, o.seed, o.calib_data);
    spdlog::info("calibration: {} windows of {} tokens from {} ({} documents, {} tokens)", o.nsamples, seqlen,
                 o.calib_data, set.documents, set.corpus_tokens);
    cal.ids = set.ids;
    cal.report = {{"source", "file"}, {"data", o.calib_data}, {"documents", set.documents},
                  {"corpus_tokens", set.corpus_tokens}};
  } else {
    spdlog::info("no --calib-data: calibrating on {} sequences of {} tokens sampled from the model itself (seed {})",
                 o.nsamples, seqlen, o.seed);
    engine::GenerationOptions gen;
    gen.count = o.nsamples;
    gen.length = seqlen;
    gen.seed = o.seed;
    gen.bos_id = ckpt.config().bos_token_id >= 0 ? ckpt.config().bos_token_id : 1;
    cal.ids = engine::generate_calibration(ckpt, placement, gen);
    cal.report = {{"source", "self-generated"}, {"sampling", "temperature 1 from BOS"}};
  }
  cal.report["nsamples"] = o.nsamples;
  cal.report["seqlen"] = seqlen;
  cal.report["seed"] = o.seed;
  cal.report["tokens"] = o.nsamples * seqlen;
  return cal;
}

std::optional<eval::PerplexityResult> evaluate(const PruneOptions& o, const std::string& model_dir,
                                               const engine::RunnerOptions& run) {
  if (o.eval_data.empty()) return std::nullopt;
  const io::Checkpoint ckpt = io::Checkpoint::open(model_dir);
  const int64_t seqlen = capped_seqlen(o.eval_seqlen, ckpt, "--eval-seqlen");
  const auto windows = held_out_windows(*model_tokenizer(ckpt, o.tokenizer_kind), o.eval_data, seqlen, o.eval_max_windows);
  return eval::perplexity(ckpt, windows.ids, run);
}

ordered_json hyperparameters(const prune::PruneConfig& c) {
  ordered_json j = {{"method", prune::metric_name(c.metric)},
                    {"pattern", c.mask.pattern.str()},
                    {"sparsity", c.mask.sparsity}};
  // The comparison group only where it decides the mask: not N:M's, nor SparseGPT's own per block.
  if (!c.mask.pattern.structured() && c.metric != prune::Metric::SparseGPT) j["group"] = prune::group_name(c.mask.group);
  if (c.metric == prune::Metric::Crepe) {
    j["kernel_size"] = c.crepe.kernel_size;
    j["alpha"] = c.crepe.alpha;
    j["beta"] = c.crepe.beta;
    j["gamma"] = c.crepe.gamma;
  }
  if (c.metric == prune::Metric::Crepe || c.metric == prune::Metric::RIA) j["act_power"] = c.crepe.act_power;
  if (c.metric == prune::Metric::SparseGPT || c.reconstruct) {
    j["block_size"] = c.sparsegpt.block_size;
    j["dampening"] = c.sparsegpt.dampening;
  }
  if (c.permute) j["permute"] = {{"blocks", c.permutation.blocks}, {"sweeps", c.permutation.max_sweeps}};
  j["allocation"] = prune::allocation_name(c.allocation);
  if (c.allocation == prune::Allocation::Owl) j["owl"] = {{"m", c.allocation_params.owl_m}, {"lambda", c.allocation_params.owl_lambda}};
  if (c.allocation == prune::Allocation::Alpha) j["alpha_eps"] = c.allocation_params.alpha_eps;
  if (c.allocation == prune::Allocation::Dlp) j["dlp_alpha"] = c.allocation_params.dlp_alpha;
  if (c.reprune == prune::Reprune::Dsnot) j["dsnot"] = {{"cycles", c.dsnot.cycles}, {"threshold", c.dsnot.threshold}, {"skip", prune::dsnot_skip_name(c.dsnot.skip)}};
  j["reconstruct"] = c.reconstruct;
  return j;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

ordered_json perplexity_json(const eval::PerplexityResult& r) {
  return {{"perplexity", r.perplexity}, {"windows", r.windows}, {"seqlen", r.seqlen}, {"seconds", r.seconds}};
}

// What must not change between an interrupted run and its --resume.
nlohmann::json resume_request(const PruneOptions& o, const io::Checkpoint& ckpt, const prune::PruneConfig& config) {
  // Paths as resolved (calib.txt, ./calib.txt and its absolute path are one file); their contents by
  // fingerprint.
  nlohmann::json calibration = {{"nsamples", o.nsamples}, {"seqlen", o.seqlen}, {"seed", o.seed},
                                {"tokenizer_kind", o.tokenizer_kind},
                                {"data", io::normalised_path(o.calib_data)}};
  if (!o.calib_data.empty()) calibration["data_file"] = io::file_fingerprint(o.calib_data);
  return {{"crepe_version", CREPE_VERSION}, {"input", io::checkpoint_fingerprint(ckpt)},
          {"hyperparameters", hyperparameters(config)}, {"calibration", calibration},
          {"device", o.device.device}, {"dtype", o.device.dtype}};
}

nlohmann::json layers_json(const std::vector<prune::LayerOutcome>& layers) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& l : layers) {
    j.push_back({{"name", l.tensor}, {"numel", l.numel}, {"pruned", l.pruned}, {"zeros", l.zeros}});
    if (l.input_permutation.defined()) {
      j.back()["input_permutation"] = prune::order_values(l.input_permutation);
      j.back()["permutation_kept"] = {l.permutation_kept_before, l.permutation_kept_after};
    }
  }
  return j;
}

// A finished layer as the partial run recorded it; with --permute its channel order must be there
// and be a permutation of the weight's input columns (the saved file would be wrong otherwise).
prune::LayerOutcome layer_from_json(const nlohmann::json& l, const io::Checkpoint& checkpoint, bool permute,
                                    const std::string& partial_dir) {
  prune::LayerOutcome layer;
  layer.tensor = l.at("name").get<std::string>();
  layer.numel = l.at("numel").get<int64_t>();
  layer.pruned = l.at("pruned").get<int64_t>();
  layer.zeros = l.value("zeros", layer.pruned);
  if (!permute) return layer;
  require(l.contains("input_permutation") && l.contains("permutation_kept"), partial_dir,
          "holds no channel permutation for " + layer.tensor +
              " (written by an earlier crepe); run again with --force instead of --resume");
  const auto order = l.at("input_permutation").get<std::vector<int64_t>>();
  require(prune::is_permutation(order, checkpoint.tensors().info(layer.tensor).shape.at(1)), partial_dir,
          "the channel permutation recorded for " + layer.tensor + " is not a permutation of its input columns");
  layer.input_permutation = prune::order_tensor(order);
  layer.permutation_kept_before = l.at("permutation_kept").at(0).get<double>();
  layer.permutation_kept_after = l.at("permutation_kept").at(1).get<double>();
  return layer;
}

// Every finished block's records, read before any long work: a partial run that cannot be resumed
// is refused at once rather than after calibration.
void check_partial_records(const io::PartialRun& partial, const io::Checkpoint& checkpoint, bool permute) {
  for (int64_t b = 0; b < checkpoint.num_layers(); ++b) {
    if (!partial.has_block(b)) continue;
    try {
      for (const auto& l : partial.block_record(b).at("layers")) layer_from_json(l, checkpoint, permute, partial.dir());
    } catch (const nlohmann::json::exception& e) {
      throw_input_error(partial.dir(), std::string("block ") + std::to_string(b) + "'s record is invalid: " + e.what());
    }
  }
}

// --permute: the column order in which each pruned weight is N:M, for a sparse kernel to apply
// (the weights themselves keep the stored layout).
std::string permutation_file(const prune::PruneConfig& config, const std::vector<prune::LayerOutcome>& layers) {
  std::vector<std::pair<std::string, at::Tensor>> orders;
  for (const auto& l : layers) orders.emplace_back(l.tensor, l.input_permutation);
  return prune::permutation_file_text(config.mask.pattern, orders);
}

// Tests stop a run at a chosen block the way users do: CREPE_TEST_STOP_AFTER_BLOCK="N:int" raises
// SIGINT, "N:term" SIGTERM, "N:kill" SIGKILL, right after block N was saved (N = -1: before
// calibration).
void maybe_stop_for_test(int64_t block) {
  const char* spec = std::getenv("CREPE_TEST_STOP_AFTER_BLOCK");
  if (!spec) return;
  const std::string text = spec;
  const auto colon = text.find(':');
  if (colon == std::string::npos || std::stoll(text.substr(0, colon)) != block) return;
  const std::string how = text.substr(colon + 1);
  std::raise(how == "kill" ? SIGKILL : how == "term" ? SIGTERM : SIGINT);
}

// What Ctrl-C (or SIGTERM) before the checkpoint is written says: what is saved, and how to go on.
int report_interruption(const io::PartialRun& partial, int64_t num_layers) {
  const long long saved = partial.completed_blocks();
  if (saved == 0) {
    std::fprintf(stderr, "crepe: interrupted before any block was finished; nothing was saved.\n");
  } else {
    std::fprintf(stderr,
                 "crepe: interrupted; %lld of %lld blocks are saved in %s. Run the same command with --resume to "
                 "continue.\n",
                 saved, static_cast<long long>(num_layers), partial.dir().c_str());
  }
  return interrupt_exit_code();
}

// The pipeline's hooks into the partial run: a block saved by an interrupted run is restored
// instead of pruned again, and every newly pruned block is saved (in its stored dtype) as it ends.
prune::PruneHooks resume_hooks(io::PartialRun& partial, const io::Checkpoint& ckpt, bool permute) {
  prune::PruneHooks hooks;
  hooks.restore = [&partial, &ckpt, permute](int64_t b, model::BlockWeights& weights, std::vector<prune::LayerOutcome>& layers) {
    if (!partial.has_block(b)) return false;
    for (auto& [name, tensor] : partial.load_block(b)) {
      for (model::Linear linear : model::kLinears) {
        if (name == io::Checkpoint::linear_weight_name(b, linear)) weights[linear].weight = tensor;
      }
    }
    for (const auto& l : partial.block_record(b).at("layers")) layers.push_back(layer_from_json(l, ckpt, permute, partial.dir()));
    return true;
  };
  hooks.finished = [&partial, &ckpt](int64_t b, const model::BlockWeights& weights, const std::vector<prune::LayerOutcome>& layers,
                                     bool restored) {
    if (restored) return;
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (model::Linear linear : model::kLinears) {
      const std::string name = io::Checkpoint::linear_weight_name(b, linear);
      tensors.emplace_back(name, weights[linear].weight.to(io::to_scalar_type(ckpt.tensors().info(name).dtype)).cpu());
    }
    partial.save_block(b, tensors, nlohmann::json{{"layers", layers_json(layers)}});
    maybe_stop_for_test(b);
  };
  return hooks;
}

// crepe_report.json: what was asked, how it was calibrated, what every tensor lost, and the times.
ordered_json prune_report(const PruneOptions& o, const prune::PruneConfig& config, const Calibration& calibration,
                          double calibration_seconds, const prune::PruneOutcome& outcome, Clock::time_point start) {
  ordered_json report;
  report["crepe_version"] = CREPE_VERSION;
  report["command_line"] = command_line();
  report["model"] = o.model;
  report["hyperparameters"] = hyperparameters(config);
  report["calibration"] = calibration.report;
  report["device"] = {{"device", o.device.device}, {"dtype", o.device.dtype}};
  ordered_json tensors = ordered_json::array();
  for (const auto& layer : outcome.layers) {
    tensors.push_back({{"name", layer.tensor}, {"numel", layer.numel}, {"pruned", layer.pruned}, {"zeros", layer.zeros},
                       {"sparsity", static_cast<double>(layer.pruned) / static_cast<double>(layer.numel)}});
  }
  // "overall" is what this run's masks removed; "zero_fraction" what the written weights hold,
  // which is more when the input had zeros already (a model pruned before).
  report["sparsity"] = {{"overall", outcome.sparsity()}, {"pruned", outcome.pruned}, {"total", outcome.total},
                        {"zeros", outcome.zeros}, {"zero_fraction", outcome.zero_fraction()},
                        {"blocks", outcome.block_sparsity()}, {"block_targets", outcome.block_targets}, {"tensors", tensors}};
  if (config.permute) {
    report["permutation"] = {{"kept_score_before", outcome.permutation_kept_before},
                             {"kept_score_after", outcome.permutation_kept_after},
                             {"file", prune::kPermutationFileName}};
  }
  report["seconds"] = {{"calibration", calibration_seconds}, {"statistics", outcome.statistics_seconds},
                       {"pruning", outcome.pruning_seconds}, {"forward", outcome.forward_seconds},
                       {"total", since(start)}};
  report["peak_rss_mib"] = peak_rss_mib();
  return report;
}

// The human-readable result on stdout (--json prints the report instead).
void print_summary(const PruneOptions& o, const prune::PruneConfig& config, const prune::PruneOutcome& outcome,
                   const std::optional<eval::PerplexityResult>& dense, const std::optional<eval::PerplexityResult>& pruned,
                   Clock::time_point start) {
  std::printf("pruned %s with %s to %.2f%% sparsity (%s) -> %s in %.1f s\n", o.model.c_str(),
              prune::metric_name(config.metric), 100.0 * outcome.sparsity(), mask_description(config).c_str(),
              o.out.c_str(), since(start));
  if (outcome.zero_fraction() > outcome.sparsity() + 1e-4) {
    std::printf("%.2f%% of the written weights are zero: the input had zeros beyond those pruned here\n",
                100.0 * outcome.zero_fraction());
  }
  if (dense && pruned) {
    std::printf("perplexity on %s: dense %.4f -> pruned %.4f (%lld windows x %lld tokens)\n", o.eval_data.c_str(),
                dense->perplexity, pruned->perplexity, static_cast<long long>(pruned->windows),
                static_cast<long long>(pruned->seqlen));
  }
}

void add_prune_options(CLI::App* cmd, const std::shared_ptr<PruneOptions>& o) {
  cmd->add_option("--model", o->model, "Hugging Face model directory (never written)")->required();
  cmd->add_option("--out", o->out, "output directory (must not exist unless --force)")->required();
  cmd->add_flag("--force", o->force, "replace an existing output directory");
  cmd->add_option("--config", o->config, "JSON file of options (keys = option names without dashes); the command line wins");
  cmd->add_option("--method", o->method, "magnitude, wanda, ri, ria, crepe or sparsegpt")->capture_default_str();
  cmd->add_option("--sparsity", o->sparsity, "fraction of each matrix pruned (unstructured)")->capture_default_str();
  cmd->add_option("--pattern", o->pattern, "unstructured or N:M (N of every M consecutive inputs pruned, e.g. 2:4)")
      ->capture_default_str();
  cmd->add_option("--group", o->group, "comparison group: layer (ria, crepe) or row (wanda's default)");
  cmd->add_option("--kernel-size", o->kernel_size, "CRePE neighbourhood window k (odd)")->capture_default_str();
  cmd->add_option("--alpha", o->alpha, "CRePE row-term coefficient")->capture_default_str();
  cmd->add_option("--beta", o->beta, "CRePE column-term coefficient")->capture_default_str();
  cmd->add_option("--gamma", o->gamma, "CRePE neighbourhood-term coefficient")->capture_default_str();
  cmd->add_option("--act-power", o->act_power, "exponent a of the activation norm (RIA, CRePE)")->capture_default_str();
  cmd->add_flag("--permute", o->permute, "N:M: RIA's channel permutation before choosing the mask");
  cmd->add_option("--permute-blocks", o->permute_blocks, "split the permutation's assignments into B column blocks (faster); 0: blocks of at most 512 groups")
      ->capture_default_str();
  cmd->add_option("--permute-sweeps", o->permute_sweeps, "refinement sweeps of the permutation")->capture_default_str();
  cmd->add_option("--allocation", o->allocation, "per-block sparsity: uniform, owl, alpha or dlp (same mean)")
      ->capture_default_str();
  cmd->add_option("--owl-m", o->owl_m, "OWL outlier threshold M")->capture_default_str();
  cmd->add_option("--owl-lambda", o->owl_lambda, "OWL sparsity spread lambda")->capture_default_str();
  cmd->add_option("--alpha-eps", o->alpha_eps, "AlphaPruning sparsity spread epsilon")->capture_default_str();
  cmd->add_option("--dlp-alpha", o->dlp_alpha, "DLP sparsity spread alpha")->capture_default_str();
  cmd->add_option("--reprune", o->reprune, "re-pruning after the mask: none or dsnot")->capture_default_str();
  cmd->add_option("--dsnot-cycles", o->dsnot_cycles, "DSnoT swap cycles per row")->capture_default_str();
  cmd->add_option("--dsnot-skip", o->dsnot_skip,
                  "layers DSnoT leaves with their first mask: mlp (DSnoT's default: it re-prunes q, k, v, o), "
                  "attention, or none")
      ->capture_default_str();
  cmd->add_option("--dsnot-threshold", o->dsnot_threshold, "DSnoT stops a row once its expected error over one calibration sequence is below this (as DSnoT's --update_threshold)")
      ->capture_default_str();
  cmd->add_flag("--reconstruct", o->reconstruct, "SparseGPT's OBS weight update for the chosen mask");
  cmd->add_option("--calib-data", o->calib_data, "calibration text or JSONL (default: sequences sampled from the model)");
  cmd->add_option("--tokenizer-kind", o->tokenizer_kind,
                  "auto (tokenizer.json when present, else tokenizer.model), json or model")->capture_default_str();
  cmd->add_option("--nsamples", o->nsamples, "calibration windows")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))->capture_default_str();
  cmd->add_option("--seqlen", o->seqlen, "tokens per calibration window (capped at the model's context)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  add_seed_option(*cmd, o->seed, "calibration sampling seed");
  cmd->add_option("--eval", o->eval_data, "evaluate dense and pruned perplexity on this text file afterwards");
  cmd->add_option("--eval-seqlen", o->eval_seqlen, "tokens per evaluation window")->check(CLI::Range(int64_t{2}, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--eval-max-windows", o->eval_max_windows, "evaluate only the first N windows (0: all)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  cmd->add_flag("--json", o->json, "print the report as one JSON document on stdout");
  cmd->add_flag("--check-finite", o->check_finite,
                "refuse a checkpoint whose weights hold NaN or Inf (reads every tensor once first)");
  cmd->add_flag("--resume", o->resume, "continue an interrupted run from its last finished block (OUT.partial)");
  cmd->add_option("--base-model", o->base_model,
                  "hub id (org/name) the output's model card names as base_model (default: told from a Hugging Face "
                  "cache path or config.json's _name_or_path, else none; none: no base_model)");
  add_device_options(*cmd, o->device);
}

// After the commit: the pruned model's perplexity (the report is completed in place, atomically),
// then the report on stdout or the summary line.
int evaluate_and_report(const PruneOptions& o, const prune::PruneConfig& config, const prune::PruneOutcome& outcome,
                        const std::optional<eval::PerplexityResult>& dense, ordered_json report,
                        engine::RunnerOptions run, Clock::time_point start) {
  run.progress_label = "eval (pruned)";
  std::optional<eval::PerplexityResult> pruned;
  try {
    pruned = evaluate(o, o.out, run);
  } catch (const Interrupted&) {
    std::fprintf(stderr, "crepe: interrupted during the evaluation; %s is complete (its report has no perplexity).\n",
                 o.out.c_str());
    return interrupt_exit_code();
  }
  if (dense && pruned) {
    report["eval"] = {{"data", o.eval_data}, {"dense", perplexity_json(*dense)}, {"pruned", perplexity_json(*pruned)}};
    report["seconds"]["total"] = since(start);
    report["peak_rss_mib"] = peak_rss_mib();
    io::write_file_atomically((std::filesystem::path(o.out) / io::kReportFileName).string(), report.dump(2) + "\n");
  }
  if (o.json) {
    print_json(report.dump(2));
  } else {
    print_summary(o, config, outcome, dense, pruned, start);
  }
  return 0;
}

}  // namespace

Action add_prune_command(CLI::App& app) {
  auto o = std::make_shared<PruneOptions>();
  CLI::App* cmd = app.add_subcommand("prune", "Prune every linear layer of every decoder block and write a sparse checkpoint");
  add_prune_options(cmd, o);

  return [o, cmd]() {
    if (!o->config.empty()) apply_config_file(*cmd, o->config);
    c10::InferenceMode inference;
    const auto start = Clock::now();
    check_pattern_sparsity(o->pattern, o->sparsity, cmd->count("--sparsity") > 0);
    require(o->base_model.empty() || o->base_model == "none" || io::is_hub_id(o->base_model), "--base-model",
            fmt::format("'{}' is not a Hugging Face hub id (org/name) or none", o->base_model));
    const prune::PruneConfig config = prune_config(*o);
    engine::RunnerOptions run = runner_options(o->device);  // checks --device/--dtype first
    const Placement placement = run.placement;
    const io::Checkpoint ckpt = io::Checkpoint::open(o->model);
    check_pattern_fits(config.mask.pattern, ckpt);
    if (o->check_finite) ckpt.check_finite();
    // The output is checked before any long work, against every input; then the partial run. The
    // writer removes what a killed run left behind (an abandoned temporary output directory).
    const std::vector<std::string> inputs = {o->model, o->calib_data, o->eval_data, o->config};
    io::check_output_directory(o->out, inputs, o->force);
    io::check_partial_directory(io::PartialRun::dir_for(o->out), inputs);
    io::PartialRun partial(o->out, resume_request(*o, ckpt, config), o->resume, o->force);
    io::CheckpointWriter writer(ckpt, o->out, o->force);
    warn_about_unused_options(*cmd, config, *o);  // after the input checks: bad input stays one line
    if (o->resume) {
      check_partial_records(partial, ckpt, config.permute);
      spdlog::info("resuming: {} block(s) already finished in {}", partial.completed_blocks(), partial.dir());
    }
    // Calibration, the dense evaluation and pruning: an interruption anywhere in them keeps the
    // finished blocks (OUT.partial) and says how to continue.
    auto interrupted = [&]() { return report_interruption(partial, ckpt.num_layers()); };
    Calibration calibration;
    double calibration_seconds = 0;
    std::optional<eval::PerplexityResult> dense;
    try {
      maybe_stop_for_test(-1);
      const auto t = Clock::now();
      calibration = calibrate(*o, ckpt, config, placement);
      calibration_seconds = since(t);
      run.progress_label = "eval (dense)";
      dense = evaluate(*o, o->model, run);
    } catch (const Interrupted&) {
      return interrupted();
    }

    spdlog::info("pruning {} with {} to {} sparsity ({})", o->model, prune::metric_name(config.metric), config.mask.sparsity,
                 mask_description(config));
    run.progress_label = "prune";
    const prune::PruneHooks hooks = resume_hooks(partial, ckpt, config.permute);
    prune::PruneOutcome outcome;
    try {
      outcome = prune::prune_model(
          ckpt, calibration.ids, config, run,
          [&](int64_t b, const model::BlockWeights& weights) {
            for (model::Linear linear : model::kLinears) {
              writer.put(io::Checkpoint::linear_weight_name(b, linear), weights[linear].weight);
            }
          },
          hooks);
    } catch (const Interrupted&) {
      return interrupted();
    } catch (const NumericalInputError&) {
      partial.remove();  // the same input fails the same way: nothing to resume
      throw;
    }

    ordered_json report = prune_report(*o, config, calibration, calibration_seconds, outcome, start);
    if (config.permute) writer.add_file(prune::kPermutationFileName, permutation_file(config, outcome.layers));
    writer.add_file(io::kReportFileName, report.dump(2) + "\n");
    writer.add_file("README.md", model_card(ckpt, config, outcome, calibration.report, o->base_model));
    writer.commit();
    partial.remove();
    spdlog::info("wrote {}", o->out);

    return evaluate_and_report(*o, config, outcome, dense, std::move(report), run, start);
  };
}

}  // namespace crepe::cli

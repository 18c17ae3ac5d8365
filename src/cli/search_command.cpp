// `crepe search`: PHO. Calibrate once (statistics cached), then search CRePE's hyperparameters with
// CMA-ES against a proxy (--objective proxy), or hill-climb on real perplexity (--objective ppl);
// `--correlate N` measures how well each proxy ranks N random configurations by perplexity.
#include <CLI/CLI.hpp>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optional>

#include "crepe/cli/commands.hpp"
#include "crepe/cli/shared_steps.hpp"
#include "crepe/core/device.hpp"
#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "crepe/core/parse.hpp"
#include "crepe/core/interrupt.hpp"
#include "crepe/core/rng.hpp"
#include "crepe/io/output_paths.hpp"
#include "crepe/io/partial_run.hpp"
#include "crepe/search/pho.hpp"
#include "crepe/text/corpus.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::cli {
namespace {

using nlohmann::ordered_json;

struct SearchOptions {
  std::string model, out, stats_path, calib_data, eval_data, proxy_data, correlate_from, layers = "all";
  double sparsity = 0.5;
  std::string pattern = "unstructured";
  std::string kernels = "1,3,5,7", groups = "layer,row";
  std::string proxy = "auto", objective = "proxy", weights = "auto";
  std::string direction = "auto";  // auto: the proxy's measured direction (search::maximized_by_default)
  bool maximize = false;           // --maximize: --direction maximize
  int64_t budget = 0;  // 0: search::default_budget(proxy), or 40 perplexity evaluations
  int64_t nsamples = 128, seqlen = 2048, eval_windows = 64, correlate = 0, proxy_samples = 8;
  uint64_t seed = 0;
  bool resume = false, json = false;
  DeviceOptions device;
};

std::vector<int64_t> parse_kernels(const std::string& text) {
  std::vector<int64_t> kernels;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const std::optional<int64_t> parsed = parse_integer(item);
    if (!parsed) throw_input_error("--kernels", "'" + item + "' is not a kernel size");
    const int64_t k = *parsed;
    prune::check_kernel_size(k, "--kernels");
    if (std::find(kernels.begin(), kernels.end(), k) == kernels.end()) kernels.push_back(k);
  }
  require(!kernels.empty(), "--kernels", "name at least one kernel size");
  return kernels;
}

std::vector<prune::Group> parse_groups(const std::string& text) {
  std::vector<prune::Group> groups;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const prune::Group group = prune::parse_group(item, "--groups");
    if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
  }
  require(!groups.empty(), "--groups", "name at least one of layer, row");
  return groups;
}

at::Tensor calibration_ids(const SearchOptions& o, const text::Tokenizer& tokenizer, int64_t seqlen) {
  require(!o.calib_data.empty(), "--calib-data", "crepe search needs calibration text");
  return text::sample_calibration(text::read_documents(o.calib_data), tokenizer, o.nsamples, seqlen, o.seed, o.calib_data).ids;
}

at::Tensor eval_ids(const SearchOptions& o, const text::Tokenizer& tokenizer, int64_t seqlen) {
  require(!o.eval_data.empty(), "--eval-data", "needed for --objective ppl and --correlate (held-out text)");
  return held_out_windows(tokenizer, o.eval_data, seqlen, o.eval_windows).ids;
}

prune::PruneConfig config_of(const search::Candidate& c, const prune::MaskSpec& mask) {
  prune::PruneConfig config;
  config.metric = prune::Metric::Crepe;
  config.crepe = c.crepe;
  config.mask = mask;
  config.mask.group = c.group;
  return config;
}

// The found configuration's keys (crepe prune options) added to `out`; an N:M mask has no group,
// so none is written (prune would warn that it has no effect).
void add_found_configuration(ordered_json& out, const search::Candidate& found, const prune::MaskSpec& mask) {
  const nlohmann::json configuration = search::candidate_json(found);  // items() only refers to it
  for (const auto& [key, value] : configuration.items()) out[key] = value;
  if (mask.pattern.structured()) out.erase("group");
}

// The sequences the network proxies run on: the first calibration windows, or windows of
// --proxy-data (text from the domain the pruned model will serve, when that is not the calibration's).
at::Tensor proxy_subsample(const SearchOptions& o, const text::Tokenizer& tokenizer, const at::Tensor& calib, int64_t seqlen) {
  if (o.proxy_samples == 0) return {};
  if (o.proxy_data.empty()) return calib.narrow(0, 0, std::min(o.proxy_samples, calib.size(0)));
  return held_out_windows(tokenizer, o.proxy_data, seqlen, o.proxy_samples).ids;
}

// The search's statistics, from --stats when that file was made for the same request; Gram
// matrices only when `need_gram` (the recon proxy reads them, nothing else does).
search::SearchStats statistics(const SearchOptions& o, const io::Checkpoint& ckpt, const at::Tensor& calib,
                               const at::Tensor& proxy_ids, const std::vector<int64_t>& blocks,
                               const engine::RunnerOptions& run, int64_t seqlen, bool need_gram) {
  // Inputs by content fingerprint and resolved path (as the trace's request): a re-downloaded model
  // or an edited text under the same name must not reuse stale statistics; the forward pass's dtype
  // and device change the activations too.
  const nlohmann::json provenance = {{"model", io::checkpoint_fingerprint(ckpt)},
                                     {"data", io::normalised_path(o.calib_data)},
                                     {"data_file", io::file_fingerprint(o.calib_data)},
                                     {"nsamples", o.nsamples}, {"seqlen", seqlen}, {"seed", o.seed}, {"blocks", blocks},
                                     {"proxy_samples", o.proxy_samples},
                                     {"proxy_data", io::normalised_path(o.proxy_data)},
                                     {"proxy_data_file", io::file_fingerprint(o.proxy_data)},
                                     {"device", o.device.device}, {"dtype", o.device.dtype}};
  if (!o.stats_path.empty()) {
    std::string why;
    if (auto cached = search::load_search_stats(o.stats_path, provenance, &why, need_gram)) {
      spdlog::info("statistics: reusing {}", o.stats_path);
      return *cached;
    }
    spdlog::info("statistics: not reusing {} ({})", o.stats_path, why);
  }
  auto stats = search::collect_search_stats(ckpt, calib, blocks, run, provenance, proxy_ids, need_gram);
  if (!o.stats_path.empty()) search::save_search_stats(o.stats_path, stats);
  return stats;
}

search::Proxy resolve_proxy(const std::string& name, const search::SearchStats& stats, int64_t num_layers) {
  if (name != "auto") return search::parse_proxy(name);
  const search::Proxy proxy = search::default_proxy(stats, num_layers);
  spdlog::info("proxy: {} (auto)", search::proxy_name(proxy));
  return proxy;
}

// Option combinations that would silently ignore one of the options.
void refuse_conflicts(const SearchOptions& o, const CLI::App& cmd) {
  require(o.correlate == 0 || o.correlate_from.empty(), "--correlate-from", "cannot be combined with --correlate");
  // Only PHO keeps a trace to continue from; the others would silently start over.
  const char* untraced = o.objective == "ppl" ? "--objective ppl" : o.correlate > 0 ? "--correlate" : nullptr;
  require(!o.resume || untraced == nullptr, "--resume",
          std::string("continues a PHO search from OUT.trace.json; ") + (untraced ? untraced : "") +
              " keeps no trace, so there is nothing to continue (run it again without --resume)");
  require(o.proxy_data.empty() || o.proxy_samples > 0, "--proxy-data", "needs --proxy-samples > 0");
  require(!o.maximize || o.direction == "auto" || o.direction == "maximize", "--maximize",
          "contradicts --direction " + o.direction);
  if (o.objective == "ppl") {
    for (const char* option : {"--proxy", "--proxy-data", "--correlate", "--correlate-from", "--maximize", "--direction", "--weights"}) {
      require(cmd.count(option) == 0, option, "does not apply to --objective ppl (hill climbing on perplexity)");
    }
  }
}

// Options this kind of search never reads: named in a warning, as crepe prune names its own.
void warn_about_unused_options(const SearchOptions& o, const CLI::App& cmd) {
  const bool measures_perplexity = o.objective == "ppl" || o.correlate > 0;
  std::vector<const char*> unused;
  if (!measures_perplexity) {
    for (const char* option : {"--eval-data", "--eval-windows"}) {
      if (cmd.count(option) > 0) unused.push_back(option);
    }
  }
  if (!o.correlate_from.empty() || o.correlate > 0) {
    if (cmd.count("--budget") > 0) unused.push_back("--budget");
  }
  if (!o.correlate_from.empty()) {
    for (const char* option : {"--kernels", "--groups"}) {
      if (cmd.count(option) > 0) unused.push_back(option);
    }
  }
  for (const char* option : unused) {
    spdlog::warn("{} is ignored: this search ({}) does not read it", option,
                 o.objective == "ppl"          ? "--objective ppl"
                 : !o.correlate_from.empty()   ? "--correlate-from"
                 : o.correlate > 0             ? "--correlate"
                                               : "PHO against a proxy");
  }
}

// Whether `path` is a JSON object with one of `keys`: how crepe recognises its own earlier outputs.
bool json_with_key(const std::string& path, std::initializer_list<const char*> keys) {
  std::ifstream in(path);
  try {
    const nlohmann::json document = nlohmann::json::parse(in);
    for (const char* key : keys) {
      if (document.is_object() && document.contains(key)) return true;
    }
  } catch (const nlohmann::json::exception&) {
  }
  return false;
}

// Whether `path` holds finished generations of the search `request` describes (what --resume needs).
bool trace_records(const std::string& path, const nlohmann::json& request) {
  std::ifstream in(path);
  if (!in) return false;
  try {
    const nlohmann::json trace = nlohmann::json::parse(in);
    return trace.contains("_request") && trace["_request"] == request && trace.contains("_progress");
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

// What a --correlate run measured: the model and the sparsity or pattern its perplexities are for.
// The model by its absolute path: ./m, m/ and /abs/m are one model, a relative m elsewhere is not.
std::string target_of(const SearchOptions& o, const prune::MaskSpec& mask) {
  return io::normalised_path(o.model) + " at " + (mask.pattern.structured() ? mask.pattern.str() : std::to_string(mask.sparsity));
}

// N random configurations, uniform in the search box, each (k, group) pair equally likely.
std::vector<search::Candidate> random_candidates(const SearchOptions& o, const std::vector<int64_t>& kernels,
                                                 const std::vector<prune::Group>& groups) {
  Rng rng(o.seed + 1);
  std::vector<search::Candidate> candidates;
  const auto lo = search::lower_bounds(), hi = search::upper_bounds();
  for (int64_t i = 0; i < o.correlate; ++i) {
    std::vector<double> x(3);
    for (size_t d = 0; d < 3; ++d) x[d] = lo[d] + (hi[d] - lo[d]) * rng.uniform();
    const int64_t k = kernels[rng.below(kernels.size())];
    const prune::Group g = groups[rng.below(groups.size())];
    candidates.push_back(search::candidate_from(x, k, g));
  }
  return candidates;
}

// The configurations and perplexities of an earlier --correlate run, to measure other proxies (or
// another subsample) against them without pruning and evaluating again.
std::vector<std::pair<search::Candidate, double>> earlier_samples(const std::string& path, const std::string& target) {
  const std::string text = read_small_file(path);
  std::vector<std::pair<search::Candidate, double>> samples;
  try {
    const nlohmann::json document = nlohmann::json::parse(text);  // named: a range-for over a temporary's member dangles
    for (const auto& s : document.at("samples")) {
      const search::Candidate c = search::candidate_from_json(s, path + ", sample " + std::to_string(samples.size()));
      samples.emplace_back(c, s.at("perplexity").get<double>());
    }
    // Perplexities measured for another target would make the correlation meaningless.
    require(document.value("target", std::string()) == target, path,
            "was measured for " + document.value("target", std::string("an unrecorded target")) + ", not " + target);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("not a --correlate result: ") + e.what());
  }
  require(samples.size() >= 3, path, "needs at least 3 samples");
  return samples;
}

// Every available proxy and the perplexity of each configuration (perplexity_of computes or looks
// it up), and Spearman's rank correlation of each proxy with perplexity.
ordered_json correlate(const search::ProxyInputs& inputs, const prune::MaskSpec& mask,
                       const std::vector<search::Candidate>& candidates,
                       const std::function<double(size_t, const search::Candidate&)>& perplexity_of) {
  std::vector<search::Proxy> measured;
  for (search::Proxy p : search::kAllProxies) {
    std::string why;
    if (search::available(p, inputs, &why)) measured.push_back(p);
    else spdlog::info("correlate: {} not measured ({})", search::proxy_name(p), why);
  }
  std::map<search::Proxy, std::vector<double>> proxies;
  std::vector<double> ppl;
  ordered_json samples = ordered_json::array();
  for (size_t i = 0; i < candidates.size(); ++i) {
    const search::Candidate& c = candidates[i];
    const auto values = search::proxy_values(inputs, c, mask, measured);
    const double p = perplexity_of(i, c);
    ppl.push_back(p);
    ordered_json sample = search::candidate_json(c);
    sample["perplexity"] = p;
    for (const auto& [proxy, v] : values) {
      proxies[proxy].push_back(v);
      sample[search::proxy_name(proxy)] = v;
    }
    samples.push_back(sample);
    spdlog::info("correlate {}/{}: ppl {:.4f}", i + 1, candidates.size(), p);
  }
  ordered_json result = {{"samples", samples}};
  for (const auto& [proxy, values] : proxies) result["spearman"][search::proxy_name(proxy)] = search::spearman(values, ppl);
  return result;
}

// What every kind of search works on, checked and resolved once, before any long work.
struct SearchSetup {
  prune::MaskSpec mask;
  std::vector<int64_t> kernels;
  std::vector<prune::Group> groups;
  std::vector<int64_t> blocks;  // the blocks the proxies use (--layers)
  search::WeightHolding holding = search::WeightHolding::Auto;
  std::optional<int64_t> device_free;  // measured before crepe allocated anything on the device
  int64_t seqlen = 0;                  // --seqlen, capped at the model's context
};

// The request checked against the model and the file system: the target, the kernels and groups
// and the budget they need, the outputs (never an input; what a killed run left of them removed),
// and whether the calibration fits in memory.
SearchSetup check_request(const SearchOptions& o, const io::Checkpoint& ckpt, const engine::RunnerOptions& run) {
  SearchSetup setup;
  setup.mask.pattern = prune::parse_pattern(o.pattern);
  check_pattern_fits(setup.mask.pattern, ckpt);
  setup.mask.sparsity = target_sparsity(setup.mask.pattern, o.sparsity);
  require(o.sparsity >= 0 && o.sparsity < 1, "--sparsity", "must be in [0, 1)");
  setup.kernels = parse_kernels(o.kernels);
  setup.groups = search::searched_groups(setup.mask, parse_groups(o.groups));
  require(o.budget >= 0, "--budget", "must be >= 0 (0: the default)");
  const int64_t pairs = static_cast<int64_t>(setup.kernels.size() * setup.groups.size());
  const bool cma_search = o.objective == "proxy" && o.correlate == 0 && o.correlate_from.empty();
  if (o.budget > 0 && cma_search) search::generations_per_pair(o.budget, pairs);
  // The smaller default (the network proxies') must hold a generation per pair too.
  const int64_t smallest_default = search::default_budget(search::Proxy::Kl);
  require(o.budget > 0 || !cma_search || pairs * search::kPhoGeneration <= smallest_default, "--budget",
          "the default of " + std::to_string(smallest_default) + " evaluations is less than one CMA-ES generation for each of the " + std::to_string(pairs) +
              " (kernel, group) pairs searched: give --budget " + std::to_string(pairs * search::kPhoGeneration) +
              " or more, or fewer --kernels");
  setup.holding = search::parse_weight_holding(o.weights);
  // Before any of crepe's allocations on the device (see search::resolve_weight_holding).
  setup.device_free = run.placement.device.is_cpu() ? std::nullopt : free_memory(run.placement.device);
  setup.blocks = search::parse_layer_selection(o.layers, ckpt.num_layers(), "--layers");
  // The outputs, before any long work: never an input, never a folder, in a folder that exists.
  const std::vector<std::string> inputs = {o.model, o.calib_data, o.eval_data, o.proxy_data, o.correlate_from};
  io::check_output_file(o.out, inputs, [](const std::string& p) { return json_with_key(p, {"_search", "spearman"}); },
                        "an earlier crepe search result");
  io::check_output_file(o.out + ".trace.json", inputs, [](const std::string& p) { return json_with_key(p, {"_request", "_progress"}); },
                        "an earlier crepe search trace");
  // A statistics cache is read before it is written, and a file that is not one is refused then.
  if (!o.stats_path.empty()) {
    io::check_output_file(o.stats_path, inputs, [](const std::string&) { return true; }, "a statistics cache");
    for (const std::string& output : {o.out, o.out + ".trace.json"}) {
      require(io::normalised_path(o.stats_path) != io::normalised_path(output), "--stats",
              o.stats_path + " is also where the search writes " + output + "; name another file");
    }
  }
  // Before the statistics pass, which is costly on a large model; pho_search checks what it holds.
  if (o.resume && cma_search) (void)search::read_trace(o.out + ".trace.json");
  setup.seqlen = capped_seqlen(o.seqlen, ckpt, "--seqlen");
  check_calibration_fits(o.nsamples, setup.seqlen, ckpt, run.placement.compute_dtype);
  // Last: a refused request changes nothing on disk.
  for (const std::string& output : {o.out, o.out + ".trace.json"}) io::remove_abandoned_temporaries(output, io::OutputForm::File);
  return setup;
}

// --objective ppl: hill climbing on the pruned model's perplexity itself, from crepe prune's
// defaults; the configuration found and its record go into `out`.
void search_by_perplexity(const SearchOptions& o, const SearchSetup& setup, const io::Checkpoint& ckpt, const at::Tensor& calib,
                          const text::Tokenizer& tokenizer, const engine::RunnerOptions& run, ordered_json& out) {
  const at::Tensor eval = eval_ids(o, tokenizer, setup.seqlen);
  search::HillClimbOptions hill;
  hill.kernels = setup.kernels;
  hill.groups = setup.groups;
  hill.budget = o.budget > 0 ? o.budget : 40;
  search::Candidate start_point;  // crepe prune's defaults, in the first group searched
  start_point.crepe = prune::crepe_defaults();
  if (std::find(hill.kernels.begin(), hill.kernels.end(), start_point.crepe.kernel_size) == hill.kernels.end()) {
    start_point.crepe.kernel_size = hill.kernels.front();
  }
  start_point.group = hill.groups.front();
  const auto result = search::hill_climb(
      [&](const search::Candidate& c) { return search::pruned_perplexity(ckpt, calib, eval, config_of(c, setup.mask), run); },
      start_point, hill);
  add_found_configuration(out, result.best, setup.mask);
  out["_search"] = {{"objective", "ppl"}, {"perplexity", result.best_value}, {"evaluations", result.evaluations},
                    {"seconds", result.seconds}, {"evaluations_to_best", result.evaluations_to_best},
                    {"seconds_to_best", result.seconds_to_best}, {"eval_data", io::normalised_path(o.eval_data)}, {"eval_windows", eval.size(0)}};
}

// --correlate N / --correlate-from FILE: every proxy's Spearman rank correlation with perplexity
// over sampled configurations (measured now, or read from an earlier run), written to --out.
int measure_correlation(const SearchOptions& o, const SearchSetup& setup, const io::Checkpoint& ckpt, const at::Tensor& calib,
                        const text::Tokenizer& tokenizer, const search::ProxyInputs& inputs, const engine::RunnerOptions& run) {
  ordered_json measured;
  if (!o.correlate_from.empty()) {
    const auto earlier = earlier_samples(o.correlate_from, target_of(o, setup.mask));
    std::vector<search::Candidate> candidates;
    for (const auto& sample : earlier) candidates.push_back(sample.first);
    measured = correlate(inputs, setup.mask, candidates, [&](size_t i, const search::Candidate&) { return earlier[i].second; });
  } else {
    const at::Tensor eval = eval_ids(o, tokenizer, setup.seqlen);
    measured = correlate(inputs, setup.mask, random_candidates(o, setup.kernels, setup.groups), [&](size_t, const search::Candidate& c) {
      return search::pruned_perplexity(ckpt, calib, eval, config_of(c, setup.mask), run);
    });
  }
  measured["target"] = target_of(o, setup.mask);
  io::write_file_atomically(o.out, measured.dump(2) + "\n");
  if (o.json) {
    print_json(measured.dump(2));
    return 0;
  }
  for (const auto& [proxy, rho] : measured["spearman"].items()) {
    std::printf("%-10s Spearman rho with perplexity: %+.3f\n", proxy.c_str(), rho.get<double>());
  }
  return 0;
}

// PHO's settings, and the request its trace records: a resumed search must be this same search.
search::PhoOptions pho_options(const SearchOptions& o, const SearchSetup& setup, const io::Checkpoint& ckpt, search::Proxy proxy) {
  search::PhoOptions pho;
  pho.proxy = proxy;
  pho.maximize = o.maximize || o.direction == "maximize" || (o.direction == "auto" && search::maximized_by_default(proxy));
  pho.kernels = setup.kernels;
  pho.groups = setup.groups;
  pho.budget = o.budget > 0 ? o.budget : search::default_budget(pho.proxy);
  spdlog::info("PHO {} {} ({})", pho.maximize ? "maximizes" : "minimizes", search::proxy_name(proxy),
               o.direction == "auto" && !o.maximize ? "its measured direction" : "as asked");
  pho.seed = o.seed;
  pho.trace_path = o.out + ".trace.json";
  pho.resume = o.resume;
  const prune::MaskSpec& mask = setup.mask;
  // Files by resolved path and fingerprint: a trailing slash or another spelling is the same search.
  pho.request = {{"crepe_version", CREPE_VERSION}, {"model", io::checkpoint_fingerprint(ckpt)},
                 {"target", mask.pattern.structured() ? mask.pattern.str() : std::to_string(mask.sparsity)},
                 {"proxy", search::proxy_name(pho.proxy)}, {"maximize", pho.maximize}, {"kernels", setup.kernels},
                 {"groups", o.groups}, {"budget", pho.budget}, {"seed", o.seed}, {"layers", setup.blocks},
                 {"calibration", {{"data", io::normalised_path(o.calib_data)}, {"data_file", io::file_fingerprint(o.calib_data)},
                                  {"nsamples", o.nsamples}, {"seqlen", setup.seqlen}}},
                 {"proxy_data", io::normalised_path(o.proxy_data)}, {"proxy_data_file", io::file_fingerprint(o.proxy_data)},
                 {"proxy_samples", o.proxy_samples},
                 {"device", o.device.device}, {"dtype", o.device.dtype},
                 {"pho_space", search::kPhoSpaceVersion}};  // a trace from another box would be misread
  return pho;
}

void add_search_options(CLI::App* cmd, const std::shared_ptr<SearchOptions>& o) {
  cmd->add_option("--model", o->model, "Hugging Face model directory")->required();
  cmd->add_option("--out", o->out, "where to write the found configuration (a --config file for crepe prune)")->required();
  cmd->add_option("--sparsity", o->sparsity, "target sparsity (unstructured)")->capture_default_str();
  cmd->add_option("--pattern", o->pattern, "unstructured or N:M")->capture_default_str();
  cmd->add_option("--calib-data", o->calib_data, "calibration text or JSONL")->required();
  cmd->add_option("--nsamples", o->nsamples, "calibration windows")
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()))->capture_default_str();
  cmd->add_option("--seqlen", o->seqlen, "tokens per calibration window (capped at the model's context)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20))->capture_default_str();
  add_seed_option(*cmd, o->seed, "calibration and search seed");
  cmd->add_option("--stats", o->stats_path, "cache file for the calibration statistics (reused when it matches)");
  cmd->add_option("--layers", o->layers, "blocks the proxies use: all, a count, or a list 0,3,5")->capture_default_str();
  cmd->add_option("--kernels", o->kernels, "kernel sizes searched")->capture_default_str();
  cmd->add_option("--groups", o->groups, "comparison groups searched")->capture_default_str();
  cmd->add_option("--proxy", o->proxy,
                  "auto (kl with every block in use, else block_out), gini, recon, recon_diag, block_out or kl")
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "where the model's weights wait between proxy evaluations: resident (read once), stream (read from "
                  "the checkpoint at every evaluation, for models that do not fit) or auto")
      ->capture_default_str();
  cmd->add_option("--direction", o->direction,
                  "minimize or maximize the proxy; auto: as measured against perplexity (maximize gini, minimize the others)")
      ->check(CLI::IsMember({"auto", "minimize", "maximize"}))
      ->capture_default_str();
  cmd->add_flag("--maximize", o->maximize, "the same as --direction maximize");
  cmd->add_option("--objective", o->objective, "proxy (PHO) or ppl (hill climbing on real perplexity)")
      ->check(CLI::IsMember({"proxy", "ppl"}))->capture_default_str();
  cmd->add_option("--budget", o->budget, "evaluations at most, in whole CMA-ES generations of 7 per (kernel, group) pair, plus one for each anchor (plain RIA and crepe's defaults per group) (0, the default: 168 for block_out and kl, 448 for the other proxies, 40 for --objective ppl)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  cmd->add_option("--proxy-samples", o->proxy_samples,
                  "sequences the network proxies (block_out, kl) run on; 0 keeps none")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))->capture_default_str();
  cmd->add_option("--eval-data", o->eval_data, "held-out text for --objective ppl and --correlate");
  cmd->add_option("--eval-windows", o->eval_windows, "held-out windows (0: the whole text)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()))->capture_default_str();
  cmd->add_option("--correlate", o->correlate, "measure the proxies' rank correlation with perplexity on N random configurations")
      ->check(CLI::Range(int64_t{0}, int64_t{100000}));
  cmd->add_option("--proxy-data", o->proxy_data,
                  "text the network proxies run on (default: the first calibration windows)");
  cmd->add_option("--correlate-from", o->correlate_from,
                  "measure the proxies against the configurations and perplexities of an earlier --correlate output");
  cmd->add_flag("--resume", o->resume, "continue from OUT.trace.json");
  cmd->add_flag("--json", o->json, "print the result as one JSON document on stdout");
  add_device_options(*cmd, o->device);
}

// PHO against a proxy: fills `out` with the configuration found and returns nothing, or returns the
// exit code where the command ends here instead (a --correlate measurement, an interruption).
std::optional<int> search_by_proxy(const SearchOptions& o, SearchSetup& setup, const io::Checkpoint& ckpt,
                                   const at::Tensor& calib, const text::Tokenizer& tokenizer,
                                   const engine::RunnerOptions& run, ordered_json& out) {
  const bool correlating = o.correlate > 0 || !o.correlate_from.empty();
  const search::SearchStats stats = statistics(o, ckpt, calib, proxy_subsample(o, tokenizer, calib, setup.seqlen),
                                               setup.blocks, run, setup.seqlen, correlating || o.proxy == "recon");
  const search::Proxy proxy = resolve_proxy(o.proxy, stats, ckpt.num_layers());
  const bool network = correlating || search::runs_network(proxy);
  setup.holding = search::resolve_weight_holding(setup.holding, ckpt, stats, run, network, setup.device_free);
  const search::ProxyInputs inputs = search::proxy_inputs(ckpt, stats, run, network, setup.holding);
  if (correlating) return measure_correlation(o, setup, ckpt, calib, tokenizer, inputs, run);
  const search::PhoOptions pho = pho_options(o, setup, ckpt, proxy);
  std::string why;
  const bool usable = search::available(pho.proxy, inputs, &why);  // fills `why` before the message is built
  require(usable, "--proxy", std::string(search::proxy_name(pho.proxy)) + " " + why);
  search::SearchResult result;
  try {
    result = search::pho_search(inputs, setup.mask, pho);
  } catch (const Interrupted&) {
    if (trace_records(pho.trace_path, pho.request)) {
      std::fprintf(stderr, "crepe: interrupted; the finished evaluations are in %s. Run the same command with --resume "
                           "to continue.\n", pho.trace_path.c_str());
    } else {
      std::fprintf(stderr, "crepe: interrupted before the anchors were evaluated; nothing was saved.\n");
    }
    return interrupt_exit_code();
  }
  add_found_configuration(out, result.best, setup.mask);
  out["_search"] = {{"objective", "proxy"}, {"proxy", search::proxy_name(pho.proxy)}, {"direction", pho.maximize ? "maximize" : "minimize"},
                    {"proxy_value", result.best_value}, {"evaluations", result.evaluations},
                    {"seconds", result.seconds}, {"seconds_earlier", result.seconds_earlier},
                    {"evaluations_to_best", result.evaluations_to_best},
                    {"seconds_to_best", result.seconds_to_best}, {"anchors", result.anchors},
                    {"per_kernel_and_group", result.summary}, {"blocks", setup.blocks},
                    {"weights", search::weight_holding_name(setup.holding)}};
  return std::nullopt;
}

}  // namespace

Action add_search_command(CLI::App& app) {
  auto o = std::make_shared<SearchOptions>();
  CLI::App* cmd = app.add_subcommand("search", "PHO: search CRePE's hyperparameters with CMA-ES against a cheap proxy");
  add_search_options(cmd, o);

  return [o, cmd]() {
    c10::InferenceMode inference;
    const auto start = std::chrono::steady_clock::now();
    engine::RunnerOptions run = runner_options(o->device);  // checks --device/--dtype first
    refuse_conflicts(*o, *cmd);
    check_pattern_sparsity(o->pattern, o->sparsity, cmd->count("--sparsity") > 0);
    const io::Checkpoint ckpt = io::Checkpoint::open(o->model);
    SearchSetup setup = check_request(*o, ckpt, run);
    warn_about_unused_options(*o, *cmd);  // after the input checks: bad input stays one line
    run.progress = false;

    const auto tokenizer = model_tokenizer(ckpt);
    const at::Tensor calib = calibration_ids(*o, *tokenizer, setup.seqlen);
    ordered_json out;
    out["method"] = "crepe";
    if (setup.mask.pattern.structured()) out["pattern"] = setup.mask.pattern.str();
    else out["sparsity"] = setup.mask.sparsity;

    if (o->objective == "ppl") {
      search_by_perplexity(*o, setup, ckpt, calib, *tokenizer, run, out);
    } else if (const std::optional<int> ended = search_by_proxy(*o, setup, ckpt, calib, *tokenizer, run, out)) {
      return *ended;
    }
    // A resumed search's earlier sessions count, as in _search.seconds.
    const double earlier = out.contains("_search") ? out["_search"].value("seconds_earlier", 0.0) : 0.0;
    // The calibration the configuration was found with, as crepe prune's own options: prune --config
    // calibrates the same way unless its command line says otherwise.
    out["calib-data"] = io::normalised_path(o->calib_data);
    out["nsamples"] = o->nsamples;
    out["seqlen"] = setup.seqlen;
    out["seed"] = o->seed;
    out["_seconds"] = earlier + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    io::write_file_atomically(o->out, out.dump(2) + "\n");
    if (o->json) print_json(out.dump(2));
    else std::printf("found %s -> %s\n", out.dump().c_str(), o->out.c_str());
    return 0;
  };
}

}  // namespace crepe::cli

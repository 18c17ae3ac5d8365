#include "crepe/search/pho.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <string>

#include "crepe/core/device.hpp"
#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"
#include "crepe/core/interrupt.hpp"
#include "crepe/eval/perplexity.hpp"
#include "crepe/io/output_paths.hpp"
#include "crepe/io/partial_run.hpp"
#include "crepe/search/cmaes.hpp"
#include "crepe/search/network_proxy.hpp"

namespace crepe::search {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kInfinity = std::numeric_limits<double>::infinity();  // not INFINITY: a float
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string pair_key(int64_t kernel, prune::Group group) {
  return "k=" + std::to_string(kernel) + " " + prune::group_name(group);
}


void write_trace(const std::string& path, const nlohmann::json& trace) {
  if (!path.empty()) io::write_file_atomically(path, trace.dump() + "\n");
}

// A trace continues only the search that wrote it: same model, target, proxy, space, budget, seed
// and data (PhoOptions::request).
void check_trace_request(const nlohmann::json& trace, const nlohmann::json& request, const std::string& path) {
  require(trace.contains("_request"), path,
          "this trace does not record what it searched (an earlier crepe wrote it); run without --resume");
  io::require_same_request(trace["_request"], request, path, "run without --resume to start over",
                           {{"model", "the model's files changed since the interrupted search"}});
}

// A pair's CMA-ES as the trace left it. Its options must be the ones this search gives the pair:
// an edited population size or budget would otherwise run a search of another size (a population
// of 1e9 exhausts the memory, a budget of 1e15 never ends).
// Compared before the state is built from them, which allocates by the population size.
Cmaes restored_cmaes(const nlohmann::json& state, const CmaesOptions& expected, const std::string& path) {
  const bool recorded = state.is_object() && state.contains("options");
  require(!recorded || state.at("options") == Cmaes(expected).to_json().at("options"), path,
          "invalid search trace: a CMA-ES state's options (population, budget, bounds, start) are not this search's; "
          "run without --resume");
  try {
    return Cmaes::from_json(state);
  } catch (const InputError& e) {
    throw_input_error(path, std::string("invalid search trace: ") + e.what() + "; run without --resume");
  }
}

bool is_trace_value(const nlohmann::json& v) {
  return v.is_number() || (v.is_string() && (v == "nan" || v == "inf" || v == "-inf"));
}

// A trace to resume from holds what this version writes: anything else (an edited or damaged file)
// is refused here, naming the file, rather than misread into a configuration no search found.
void check_trace_contents(const nlohmann::json& trace, const CmaesOptions& pair_options, const std::string& path) {
  auto bad = [&](const std::string& what) { throw_input_error(path, "invalid search trace: " + what + "; run without --resume"); };
  if (!trace.is_object()) bad("not a JSON object");
  if (trace.contains("_progress")) {
    const nlohmann::json& p = trace["_progress"];
    if (!p.is_object()) bad("_progress is not an object");
    for (const auto& [key, value] : p.items()) {
      if (!value.is_number()) bad("_progress." + key + " is not a number");
    }
  }
  if (trace.contains("_anchors")) {
    if (!trace["_anchors"].is_object()) bad("_anchors is not an object");
    for (const auto& [name, value] : trace["_anchors"].items()) {
      if (!is_trace_value(value)) bad("the value of anchor '" + name + "' is not a number");
    }
  }
  const std::vector<double> lo = lower_bounds(), hi = upper_bounds();
  for (const auto& [key, pair] : trace.items()) {
    if (key.rfind("k=", 0) != 0) continue;
    if (!pair.is_object() || !pair.contains("state")) bad("'" + key + "' holds no CMA-ES state");
    if (pair.contains("best") && !pair["best"].is_number()) bad("'" + key + "'.best is not a number");
    const nlohmann::json& x = pair.value("best_x", nlohmann::json::array());
    if (!x.is_array() || (!x.empty() && x.size() != lo.size())) bad("'" + key + "'.best_x is not a point of the search box");
    for (size_t d = 0; d < x.size(); ++d) {
      if (!x[d].is_number() || x[d].get<double>() < lo[d] || x[d].get<double>() > hi[d]) {
        bad("'" + key + "'.best_x is not a point of the search box");
      }
    }
    (void)restored_cmaes(pair["state"], pair_options, path);  // all checked before the first evaluation
  }
}

}  // namespace

int64_t default_budget(Proxy proxy) { return runs_network(proxy) ? 168 : 448; }

Proxy default_proxy(const SearchStats& stats, int64_t num_layers) {
  if (!has_subsample(stats)) return Proxy::ReconDiag;
  std::vector<int64_t> blocks;
  for (const BlockStats& b : stats.blocks) blocks.push_back(b.block);
  return covers_every_block(blocks, num_layers) ? Proxy::Kl : Proxy::BlockOut;
}

Candidate candidate_from(const std::vector<double>& x, int64_t kernel, prune::Group group) {
  Candidate c;
  c.crepe.kernel_size = kernel;
  c.crepe.alpha = 1.0;
  c.crepe.beta = std::pow(10.0, x[0]);
  // The floor of gamma's range switches the neighbourhood term off, so the box holds plain RIA: at
  // 7B widths a row's relative importances are ~1e-4, and gamma = 1e-4 would still move them.
  c.crepe.gamma = x[1] <= lower_bounds()[1] ? 0.0 : std::pow(10.0, x[1]);
  c.crepe.act_power = x[2] / kActPowerScale;
  c.group = group;
  return c;
}

std::vector<double> lower_bounds() { return {-3.0, -4.0, 0.0}; }
std::vector<double> upper_bounds() { return {1.0, 1.0, kActPowerScale}; }

nlohmann::json candidate_json(const Candidate& c) {
  return {{"kernel-size", c.crepe.kernel_size}, {"alpha", c.crepe.alpha}, {"beta", c.crepe.beta},
          {"gamma", c.crepe.gamma},             {"act-power", c.crepe.act_power}, {"group", prune::group_name(c.group)}};
}

Candidate candidate_from_json(const nlohmann::json& j, const std::string& source) {
  Candidate c;
  try {
    require(j.at("kernel-size").is_number_integer(), source, "kernel-size must be a whole number, got " + j.at("kernel-size").dump());
    c.crepe.kernel_size = j.at("kernel-size").get<int64_t>();
    c.crepe.alpha = j.at("alpha").get<double>();
    c.crepe.beta = j.at("beta").get<double>();
    c.crepe.gamma = j.at("gamma").get<double>();
    c.crepe.act_power = j.at("act-power").get<double>();
    c.group = prune::parse_group(j.at("group").get<std::string>(), source);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(source, std::string("not a CRePE configuration: ") + e.what());
  }
  try {
    prune::validate(c.crepe);
  } catch (const InputError& e) {
    throw_input_error(source, e.what());
  }
  return c;
}

WeightHolding parse_weight_holding(const std::string& text, const std::string& option) {
  if (text == "auto") return WeightHolding::Auto;
  if (text == "resident") return WeightHolding::Resident;
  if (text == "stream") return WeightHolding::Stream;
  throw_input_error(option, "invalid value '" + text + "' (expected auto, resident or stream)");
}

const char* weight_holding_name(WeightHolding holding) {
  switch (holding) {
    case WeightHolding::Auto: return "auto";
    case WeightHolding::Resident: return "resident";
    case WeightHolding::Stream: return "stream";
  }
  return "";
}

bool weights_fit(int64_t weights, int64_t working, std::optional<int64_t> free) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  if (!free) return weights <= 16 * kGiB;
  return static_cast<double>(weights + working) <= 0.9 * static_cast<double>(*free);
}

namespace {

std::string human_bytes(int64_t bytes) {
  const double mib = static_cast<double>(bytes) / static_cast<double>(int64_t{1} << 20);
  return mib < 1024 ? fmt::format("{:.1f} MiB", mib) : fmt::format("{:.1f} GiB", mib / 1024);
}

// Where the weights wait: on the device with a network proxy (its forward passes run there), else
// in host memory, each moved to the device as it is judged (a whole model need not fit on a GPU).
Placement weights_home(const engine::RunnerOptions& options, bool with_network) {
  return with_network ? options.placement : Placement{c10::Device(c10::kCPU), options.placement.compute_dtype};
}

}  // namespace

WeightHolding resolve_weight_holding(WeightHolding holding, const io::Checkpoint& checkpoint, const SearchStats& stats,
                                     const engine::RunnerOptions& options, bool network,
                                     std::optional<int64_t> device_free) {
  if (holding != WeightHolding::Auto) return holding;
  const bool with_network = network && has_subsample(stats);
  const Placement where = weights_home(options, with_network);
  int64_t weights = 0, largest = 0, widest_input = 0, subsample = 0;
  for (const BlockStats& block : stats.blocks) {
    for (model::Linear linear : model::kLinears) {
      const io::TensorInfo& info = checkpoint.tensors().info(io::Checkpoint::linear_weight_name(block.block, linear));
      weights += static_cast<int64_t>(info.nbytes());
      largest = std::max(largest, info.numel());
      widest_input = std::max(widest_input, info.shape.at(1));
    }
    if (with_network) subsample += block.sample_input.nbytes();
  }
  // Float32 copies of the largest layer (weight, scores, masks, products), the network's subsample
  // and dense outputs, the head kl loads, a Gram matrix (recon), and a margin.
  int64_t working = 8 * largest * 4 + 2 * subsample + (int64_t{1} << 30);
  if (with_network) {
    const model::ModelConfig& config = checkpoint.config();
    working += config.vocab_size * config.hidden_size * static_cast<int64_t>(c10::elementSize(where.compute_dtype));
  }
  if (has_gram(stats)) working += widest_input * widest_input * 4;
  const bool on_device = !where.device.is_cpu();
  const std::optional<int64_t> free = on_device && device_free ? device_free : free_memory(where.device);
  const bool fit = weights_fit(weights, working, free);
  const std::string room = free ? human_bytes(*free) + " free" : std::string("free memory unknown");
  spdlog::info("search: {} of linear weights {} ({} on {}; --weights overrides)", human_bytes(weights),
               fit ? "stay resident" : "are streamed from the checkpoint at every evaluation", room, where.device.str());
  return fit ? WeightHolding::Resident : WeightHolding::Stream;
}

ProxyInputs proxy_inputs(const io::Checkpoint& checkpoint, const SearchStats& stats, const engine::RunnerOptions& options,
                         bool network, WeightHolding holding) {
  ProxyInputs inputs;
  inputs.device = options.placement.device;
  inputs.checkpoint = &checkpoint;
  const bool with_network = network && has_subsample(stats);
  // Resident weights are held once, as stored: the values `crepe prune` scores, and for 16-bit
  // checkpoints no more memory than a compute-dtype copy; the layers and the network share them.
  // Streamed ones are not held at all (norms and biases are).
  const Placement where = weights_home(options, with_network);
  const bool stream = resolve_weight_holding(holding, checkpoint, stats, options, network) == WeightHolding::Stream;
  std::vector<int64_t> blocks;
  std::vector<model::BlockWeights> dense;
  std::vector<at::Tensor> samples;
  for (const BlockStats& block : stats.blocks) {
    model::BlockWeights weights = io::Checkpoint::upload_block(
        checkpoint.stage_block(block.block, where, /*linear_weights=*/!stream), where, /*stored_linears=*/true);
    for (model::Linear linear : model::kLinears) {
      inputs.layers.push_back({weights[linear].weight, io::Checkpoint::linear_weight_name(block.block, linear),
                               &block.inputs[static_cast<int>(model::input_of(linear))]});
    }
    blocks.push_back(block.block);
    dense.push_back(std::move(weights));
    samples.push_back(block.sample_input);
  }
  if (with_network) {
    inputs.network = std::make_shared<NetworkProxy>(checkpoint, std::move(blocks), std::move(dense), std::move(samples), options);
  }
  return inputs;
}

std::vector<prune::Group> searched_groups(const prune::MaskSpec& mask, const std::vector<prune::Group>& groups) {
  if (!mask.pattern.structured() || groups.size() <= 1) return groups;
  return {groups.front()};
}

int64_t generations_per_pair(int64_t budget, int64_t pairs) {
  const int64_t generations = budget / std::max<int64_t>(1, pairs) / kPhoGeneration;
  require(generations >= 1, "--budget",
          std::to_string(budget) + " is less than one CMA-ES generation (" + std::to_string(kPhoGeneration) +
              " evaluations) for each of the " + std::to_string(pairs) + " (kernel, group) pairs searched: give at least " +
              std::to_string(pairs * kPhoGeneration));
  return generations;
}

std::vector<Anchor> pho_anchors(const std::vector<int64_t>& kernels, const std::vector<prune::Group>& groups) {
  std::vector<Anchor> anchors;
  const prune::CrepeParams defaults = prune::crepe_defaults();
  for (prune::Group group : groups) {
    prune::CrepeParams ria = prune::ria_params();
    ria.kernel_size = kernels.empty() ? ria.kernel_size : kernels.front();  // irrelevant while gamma = 0
    anchors.push_back({std::string("ria ") + prune::group_name(group), {ria, group}});
    if (std::find(kernels.begin(), kernels.end(), defaults.kernel_size) != kernels.end()) {
      anchors.push_back({std::string("defaults ") + prune::group_name(group), {defaults, group}});
    }
  }
  return anchors;
}

namespace {

// Where a search stands across sessions: the trace's "_progress", read back on --resume.
struct Progress {
  int64_t evaluated = 0;
  double best = kInfinity;  // signed: lower is better
  int64_t evaluations_to_best = 0;
  double seconds_to_best = 0;
  double seconds_before = 0;  // spent by the sessions before this one

  static Progress from(const nlohmann::json& trace) {
    Progress p;
    if (!trace.contains("_progress")) return p;
    const nlohmann::json& done = trace["_progress"];
    p.evaluated = done.value("evaluations", int64_t{0});
    p.best = done.contains("best") ? done["best"].get<double>() : kInfinity;
    p.evaluations_to_best = done.value("evaluations_to_best", int64_t{0});
    p.seconds_to_best = done.value("seconds_to_best", 0.0);
    p.seconds_before = done.value("seconds", 0.0);
    return p;
  }
  nlohmann::json to_json(double seconds) const {
    nlohmann::json j = {{"evaluations", evaluated}, {"evaluations_to_best", evaluations_to_best},
                        {"seconds_to_best", seconds_to_best}, {"seconds", seconds}};
    if (std::isfinite(best)) j["best"] = best;  // left out until finite: JSON would hold null
    return j;
  }
};

// Values in the trace: numbers, or "nan" and "inf" strings where JSON has no number.
nlohmann::json value_json(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf")); }
double value_from_json(const nlohmann::json& j) {
  if (j.is_number()) return j.get<double>();
  const std::string text = j.get<std::string>();
  return text == "nan" ? std::numeric_limits<double>::quiet_NaN() : (text == "inf" ? kInfinity : -kInfinity);
}

}  // namespace

nlohmann::json read_trace(const std::string& path) {
  std::error_code ec;
  require(std::filesystem::exists(path, ec), path, "nothing to resume (no trace from an earlier search with this --out)");
  const std::string text = read_small_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw_input_error(path, std::string("invalid search trace: ") + e.what());
  }
}

SearchResult pho_search(const ProxyInputs& inputs, const prune::MaskSpec& mask, const PhoOptions& options) {
  auto pair_options = [&options](int64_t evaluations) {
    CmaesOptions cma;
    cma.x0 = {0.0, -1.0, 0.5 * kActPowerScale};  // RIA's beta = 1 and a = 0.5, a small neighbourhood weight
    cma.sigma0 = 0.6;
    cma.lower = lower_bounds();
    cma.upper = upper_bounds();
    cma.seed = options.seed;
    cma.lambda = static_cast<int>(kPhoGeneration);  // the default for 3 dimensions, stated
    cma.max_evaluations = std::max<int64_t>(1, evaluations);
    return cma;
  };
  c10::InferenceMode inference;
  const auto start = Clock::now();
  SearchResult result;
  const double sign = options.maximize ? -1.0 : 1.0;
  const std::vector<prune::Group> groups = searched_groups(mask, options.groups);
  const int64_t pairs = std::max<int64_t>(1, static_cast<int64_t>(options.kernels.size() * groups.size()));
  const CmaesOptions cma = pair_options(generations_per_pair(options.budget, pairs) * kPhoGeneration);
  nlohmann::json trace = options.resume ? read_trace(options.trace_path) : nlohmann::json::object();
  if (options.resume) {
    check_trace_request(trace, options.request, options.trace_path);  // first: it names what changed
    check_trace_contents(trace, cma, options.trace_path);
  }
  trace["_request"] = options.request;
  Progress progress = Progress::from(trace);
  auto elapsed = [&] { return progress.seconds_before + since(start); };
  double best_value = kInfinity;  // signed, like the fitness CMA-ES minimizes
  auto offer = [&](const Candidate& c, double signed_value) {  // the overall best so far, whoever found it
    if (signed_value < best_value) best_value = signed_value, result.best = c;
  };
  auto evaluate = [&](const Candidate& c) {
    stop_if_interrupted();  // the trace holds every finished generation: --resume continues there
    const double value = proxy_values(inputs, c, mask, {options.proxy}).at(options.proxy);
    result.trace.push_back({c, value});
    ++progress.evaluated;
    if (sign * value < progress.best) {
      progress.best = sign * value;
      progress.evaluations_to_best = progress.evaluated;
      progress.seconds_to_best = elapsed();
    }
    if (options.on_evaluation) options.on_evaluation(progress.evaluated);
    return value;
  };
  auto save = [&] {
    trace["_progress"] = progress.to_json(elapsed());
    write_trace(options.trace_path, trace);
  };

  for (const Anchor& anchor : pho_anchors(options.kernels, groups)) {
    nlohmann::json& recorded = trace["_anchors"][anchor.name];
    if (recorded.is_null()) recorded = value_json(evaluate(anchor.candidate));
    const double value = value_from_json(recorded);
    result.anchors[anchor.name] = recorded;
    offer(anchor.candidate, sign * value);
    ++result.evaluations;
  }
  save();

  for (int64_t kernel : options.kernels) {
    for (prune::Group group : groups) {
      const std::string key = pair_key(kernel, group);
      Cmaes es = trace.contains(key) ? restored_cmaes(trace[key]["state"], cma, options.trace_path) : Cmaes(cma);
      const bool pair_found = trace.contains(key) && trace[key].contains("best") && trace[key]["best"].is_number();
      double pair_best = pair_found ? trace[key]["best"].get<double>() : kInfinity;
      std::vector<double> pair_best_x = trace.contains(key) ? trace[key].value("best_x", std::vector<double>{}) : std::vector<double>{};
      while (es.stop() == CmaesStop::None) {
        std::vector<double> fitness;
        for (const auto& x : es.ask()) {
          fitness.push_back(sign * evaluate(candidate_from(x, kernel, group)));
          if (fitness.back() < pair_best) pair_best = fitness.back(), pair_best_x = x;
        }
        es.tell(fitness);
        trace[key] = {{"state", es.to_json()}, {"best_x", pair_best_x}};
        if (std::isfinite(pair_best)) trace[key]["best"] = pair_best;  // left out until finite
        save();
        if (options.progress) {
          spdlog::info("pho {}: generation {}, best {} {:.6g}, sigma {:.3g}", key, es.generation(),
                       proxy_name(options.proxy), sign * pair_best, es.sigma());
        }
      }
      result.evaluations += es.evaluations();
      result.summary[key] = {{"best", sign * pair_best}, {"evaluations", es.evaluations()},
                             {"stop", to_string(es.stop())}};
      if (!pair_best_x.empty()) offer(candidate_from(pair_best_x, kernel, group), pair_best);
    }
  }
  require(std::isfinite(best_value), "--proxy",
          std::string("every evaluation of ") + proxy_name(options.proxy) +
              " gave NaN or an infinite value, so there is no configuration to choose (a network proxy may "
              "overflow in fp16: try --dtype bf16 or fp32)");
  result.best_value = sign * best_value;
  result.evaluations_to_best = progress.evaluations_to_best;
  result.seconds_to_best = progress.seconds_to_best;
  result.seconds = elapsed();
  result.seconds_earlier = progress.seconds_before;
  return result;
}

double pruned_perplexity(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids, const at::Tensor& eval_ids,
                         const prune::PruneConfig& config, const engine::RunnerOptions& options) {
  c10::InferenceMode inference;
  engine::BlockRunner runner(checkpoint, options);
  at::Tensor eval_states = runner.embed(eval_ids);
  prune::prune_model(checkpoint, calibration_ids, config, options, [&](int64_t, const model::BlockWeights& weights) {
    runner.forward(io::Checkpoint::upload_block(weights, options.placement), eval_states);
  });
  const at::Tensor nll = eval::window_nll(checkpoint, eval_states, eval_ids, options.placement);
  return std::exp(nll.mean().item<double>());
}

std::vector<double> box_point(const Candidate& c) {
  const double alpha = c.crepe.alpha > 0 ? c.crepe.alpha : 1.0;  // masks depend on the ratios only
  const std::vector<double> lo = lower_bounds(), hi = upper_bounds();
  auto log_coordinate = [&](double value, int d) {
    return value <= 0 ? lo[d] : std::clamp(std::log10(value / alpha), lo[d], hi[d]);
  };
  return {log_coordinate(c.crepe.beta, 0), log_coordinate(c.crepe.gamma, 1),
          std::clamp(kActPowerScale * c.crepe.act_power, lo[2], hi[2])};
}

namespace {

// A hill-climbing position: the candidate and its point in PHO's box (kept, not recomputed, so
// steps add up exactly).
struct HillPoint {
  Candidate candidate;
  std::vector<double> x;
};

// Positions are kept on a 1e-9 grid, so that a step up and a step down return exactly to where they
// started (floating-point sums would not) and a point met twice is recognised.
double on_grid(double value) { return std::round(value * 1e9) / 1e9; }

// p's candidate with the box coordinate d moved to y[d]. The other coefficients keep their exact
// values, and so does this one when it returns to the start's coordinate: recomputed from the
// grid-rounded point, gamma = 0.25 would come back as 0.2499999998 in a written configuration.
Candidate moved_along(const HillPoint& p, size_t d, const std::vector<double>& y, const HillPoint& start) {
  const Candidate& from = y[d] == start.x[d] ? start.candidate : candidate_from(y, p.candidate.crepe.kernel_size, p.candidate.group);
  // candidate_from gives alpha = 1; box coordinates are relative to alpha (box_point).
  const double scale = y[d] == start.x[d] ? 1.0 : (p.candidate.crepe.alpha > 0 ? p.candidate.crepe.alpha : 1.0);
  Candidate moved = p.candidate;
  if (d == 0) moved.crepe.beta = scale * from.crepe.beta;
  if (d == 1) moved.crepe.gamma = scale * from.crepe.gamma;
  if (d == 2) moved.crepe.act_power = from.crepe.act_power;
  return moved;
}

Candidate with_kernel(Candidate c, int64_t kernel) {
  c.crepe.kernel_size = kernel;
  return c;
}

// What identifies a position's mask: kernel (irrelevant while gamma = 0, so left out then), group
// and the box coordinates on the grid.
std::string position_key(const HillPoint& p) {
  const bool gamma_off = p.x[1] <= lower_bounds()[1];
  std::string key = std::to_string(gamma_off ? 0 : p.candidate.crepe.kernel_size) + "/" + prune::group_name(p.candidate.group);
  for (double v : p.x) key += "/" + std::to_string(std::llround(v * 1e9));
  return key;
}

// The positions one step away from `p` along each coordinate, clipped to the box; none that the
// box's faces make equal to `p`, and no kernel step while gamma = 0 (the kernel only enters through
// the neighbourhood term, so those masks would be p's own).
std::vector<HillPoint> hill_neighbours(const HillPoint& p, const HillPoint& start, const std::vector<double>& steps,
                                       const HillClimbOptions& options) {
  std::vector<HillPoint> out;
  const int64_t kernel = p.candidate.crepe.kernel_size;
  const prune::Group group = p.candidate.group;
  const auto k = std::find(options.kernels.begin(), options.kernels.end(), kernel);
  if (k != options.kernels.end() && p.candidate.crepe.gamma > 0) {
    if (k + 1 != options.kernels.end()) out.push_back({with_kernel(p.candidate, *(k + 1)), p.x});
    if (k != options.kernels.begin()) out.push_back({with_kernel(p.candidate, *(k - 1)), p.x});
  }
  const std::vector<double> lo = lower_bounds(), hi = upper_bounds();
  for (size_t d = 0; d < p.x.size(); ++d) {
    for (double direction : {1.0, -1.0}) {
      std::vector<double> y = p.x;
      y[d] = on_grid(std::clamp(p.x[d] + direction * steps[d], lo[d], hi[d]));
      if (y[d] != p.x[d]) out.push_back({moved_along(p, d, y, start), y});
    }
  }
  if (options.groups.size() > 1) {
    const prune::Group other = group == options.groups.front() ? options.groups[1] : options.groups.front();
    Candidate c = p.candidate;
    c.group = other;
    out.push_back({c, p.x});
  }
  return out;
}

}  // namespace

SearchResult hill_climb(const std::function<double(const Candidate&)>& perplexity_of, const Candidate& start,
                        const HillClimbOptions& options) {
  const auto t0 = Clock::now();
  SearchResult result;
  std::vector<double> x0 = box_point(start);
  for (double& v : x0) v = on_grid(v);
  const HillPoint origin{start, x0};
  HillPoint best = origin;
  double best_value = perplexity_of(best.candidate);
  result.trace.push_back({best.candidate, best_value});
  std::set<std::string> evaluated = {position_key(best)};
  result.evaluations = 1;
  result.evaluations_to_best = 1;
  result.seconds_to_best = since(t0);
  // Steps in the box: a factor of 2 on beta and gamma, 0.2 on a; halved when no neighbour improves.
  std::vector<double> steps = {std::log10(2.0), std::log10(2.0), 0.2 * kActPowerScale};
  while (result.evaluations < options.budget) {
    bool improved = false;
    for (const HillPoint& n : hill_neighbours(best, origin, steps, options)) {
      if (result.evaluations >= options.budget) break;
      if (!evaluated.insert(position_key(n)).second) continue;  // known, and no better
      const double value = perplexity_of(n.candidate);
      ++result.evaluations;
      result.trace.push_back({n.candidate, value});
      if (value < best_value) {
        best_value = value;
        best = n;
        improved = true;
        result.evaluations_to_best = result.evaluations;
        result.seconds_to_best = since(t0);
      }
      if (options.progress) spdlog::info("hill climbing: evaluation {}, ppl {:.4f} (best {:.4f})", result.evaluations, value, best_value);
      if (improved) break;  // first improvement: move, then look around the new point
    }
    if (!improved) {
      if (steps[0] < std::log10(1.2)) break;  // steps already refined: a local optimum
      for (double& step : steps) step /= 2;
    }
  }
  result.best = best.candidate;
  result.best_value = best_value;
  result.seconds = since(t0);
  return result;
}

double spearman(const std::vector<double>& a_in, const std::vector<double>& b_in) {
  // NaN has no rank (and would break the sort's ordering): such pairs are left out.
  std::vector<double> a, b;
  for (size_t i = 0; i < std::min(a_in.size(), b_in.size()); ++i) {
    if (!std::isnan(a_in[i]) && !std::isnan(b_in[i])) a.push_back(a_in[i]), b.push_back(b_in[i]);
  }
  if (a.size() < 2) return 0.0;
  auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size();) {  // average ranks over ties
      size_t j = i;
      while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
      for (size_t t = i; t <= j; ++t) r[order[t]] = (static_cast<double>(i) + static_cast<double>(j)) / 2.0;
      i = j + 1;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    cov += (ra[i] - ma) * (rb[i] - mb);
    va += (ra[i] - ma) * (ra[i] - ma);
    vb += (rb[i] - mb) * (rb[i] - mb);
  }
  return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : 0.0;
}

}  // namespace crepe::search

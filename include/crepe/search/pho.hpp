#pragma once
// PHO: proxy-based hyperparameter search for CRePE with CMA-ES, and its baseline, coordinate hill
// climbing on real perplexity.
//
// Search space. The CRePE score is linear in (alpha, beta, gamma), so masks depend only on their
// ratios: alpha is fixed at 1 and the search runs over x = (log10 beta, log10 gamma, 4a) in
// [-3, 1] x [-4, 1] x [0, 4], where log10 gamma = -4, its floor, stands for gamma = 0: the box then
// holds plain RIA (alpha = beta = 1, gamma = 0, a = 0.5) exactly, and CMA-ES, whose repair clips
// samples onto the faces, reaches it. The activation power a is stretched four times so that each
// side of the box is several initial step sizes (sigma0 = 0.6) long: on [0, 1], 40% of the first
// generation's samples were clipped onto a face of a, and clipped (shortened) steps made CMA-ES
// shrink its step size as if it were converging. The kernel size k and the comparison group (layer or row) are
// discrete; each (k, group) pair gets its own CMA-ES run with an equal share of the budget. We
// search them separately rather than rounding a continuous encoding because CMA-ES adapts badly
// on plateaus, and the pairs are few (4 kernels x 2 groups by default).
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "crepe/engine/runner.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/pipeline.hpp"
#include "crepe/search/layer_stats.hpp"
#include "crepe/search/proxy.hpp"

namespace crepe::search {

// x[2] = kActPowerScale * a (see above).
inline constexpr double kActPowerScale = 4.0;
// Part of a search's request (crepe search records it in the trace): a trace written for another
// box is not resumed.
inline constexpr int kPhoSpaceVersion = 2;
// x = (log10 beta, log10 gamma, 4a) <-> Candidate with alpha = 1 (gamma = 0 on gamma's floor).
Candidate candidate_from(const std::vector<double>& x, int64_t kernel, prune::Group group);
// The inverse for any candidate: beta and gamma relative to alpha (masks depend on the ratios only),
// each clipped to the box; gamma = 0 maps to gamma's floor.
std::vector<double> box_point(const Candidate& candidate);
std::vector<double> lower_bounds();
std::vector<double> upper_bounds();

struct TracePoint {
  Candidate candidate;
  double value = 0;  // proxy or perplexity
};

struct SearchResult {
  Candidate best;
  double best_value = 0;
  int64_t evaluations = 0;
  double seconds = 0;
  double seconds_earlier = 0;       // of `seconds`, what earlier sessions of a resumed search took
  int64_t evaluations_to_best = 0;  // the evaluation (1-based) that found `best`, and when
  double seconds_to_best = 0;
  std::vector<TracePoint> trace;  // this session's evaluations, in order (a resumed search's earlier ones are not here)
  nlohmann::json summary;  // per (k, group): best value, evaluations
  nlohmann::json anchors;  // PHO's anchors' values by name (numbers, or "nan"/"inf")
};

// CMA-ES evaluations when --budget is not given: 448 for the statistics proxies (milliseconds
// each); 168 for block_out and kl, which run the network per evaluation: on stories260k at 60%, 80
// and 168 kl evaluations found the same configuration, 448 a slightly worse one (measured before
// the anchors and the 4a axis; 168 still found its best at the last generation, README).
// Both are whole generations (7 evaluations) for the default 8 (kernel, group) pairs.
int64_t default_budget(Proxy proxy);

// The proxy `--proxy auto` means, from what the statistics allow: kl (every block, with a
// subsample), block_out (a sample of blocks, with a subsample), else recon_diag. The order is the
// measured ranking of their correlations with perplexity (README, "PHO: choosing the proxy").
Proxy default_proxy(const SearchStats& stats, int64_t num_layers);

// The comparison groups worth searching for `mask`: all of `groups` for unstructured sparsity; for
// N:M only the first, since an N:M mask is chosen inside each run of M inputs whatever the group
// (searching both would spend half the budget on identical runs).
std::vector<prune::Group> searched_groups(const prune::MaskSpec& mask, const std::vector<prune::Group>& groups);

// CMA-ES's default population for PHO's three continuous dimensions: 4 + floor(3 ln 3).
constexpr int64_t kPhoGeneration = 7;
// Whole generations each (k, group) pair gets from `budget` evaluations in all; InputError naming
// --budget when that is not even one.
int64_t generations_per_pair(int64_t budget, int64_t pairs);

struct PhoOptions {
  Proxy proxy = Proxy::ReconDiag;
  bool maximize = false;  // the proxy's direction, as measured
  std::vector<int64_t> kernels = {1, 3, 5, 7};
  std::vector<prune::Group> groups = {prune::Group::Layer, prune::Group::Row};  // as searched_groups keeps them
  int64_t budget = 448;  // CMA-ES evaluations in all, at most: each (k, group) pair gets an equal share
                         // in whole generations (InputError when that is not one generation); the
                         // anchors (pho_anchors) come on top
  uint64_t seed = 0;
  std::string trace_path;  // written after every generation; resumed from when `resume`
  bool resume = false;     // InputError unless the trace recorded the same `request`
  nlohmann::json request = nlohmann::json::object();  // what is searched, as the caller identifies it
  bool progress = true;
  // Called after each evaluation with the count so far (all sessions); may throw Interrupted to
  // stop the search, which then resumes from its last saved generation.
  std::function<void(int64_t evaluations)> on_evaluation;
};

// Where the search keeps the model's linear weights between evaluations (`crepe search --weights`):
//   resident  read once and held as stored: on the device with a network proxy (its forward passes
//             run there), else in host memory, each moved to the device as it is judged;
//   stream    read from the checkpoint's memory map as each layer is judged, at every evaluation:
//             no copy of the model is held (the page cache keeps what fits), for one read of the
//             model per evaluation; what lets a 70B model be searched on one GPU;
//   auto      resident when they fit (weights_fit), else stream.
// Both give the same proxy values.
enum class WeightHolding { Auto, Resident, Stream };
WeightHolding parse_weight_holding(const std::string& text, const std::string& option = "--weights");
const char* weight_holding_name(WeightHolding holding);

// auto's rule: `weights` bytes stay resident when they and `working` bytes of evaluation
// temporaries take at most 90% of the `free` bytes of the memory that would hold them; where free
// memory is unknown, when the weights take at most 16 GiB.
bool weights_fit(int64_t weights, int64_t working, std::optional<int64_t> free);

// auto made concrete (Resident or Stream; other values are returned as they are), and logged: the
// stored bytes of every linear weight in `stats`' blocks, plus an evaluation's working set, against
// the free memory where proxy_inputs would keep them. `device_free`, when given, is the device's
// free memory measured before the statistics pass: LibTorch keeps the blocks that pass freed
// cached, unavailable to the driver's count but reusable by the search.
WeightHolding resolve_weight_holding(WeightHolding holding, const io::Checkpoint& checkpoint, const SearchStats& stats,
                                     const engine::RunnerOptions& options, bool network = true,
                                     std::optional<int64_t> device_free = std::nullopt);

// What the proxies look at: every linear layer of the blocks in `stats`, judged on options' device,
// and, with `network` and a subsample in the statistics, the network for block_out and kl (on that
// device; it runs every block in use once to make its dense references). `holding` says where the
// weights wait between evaluations (auto decides here, and says what it decided in the log).
// `checkpoint` and `stats` must outlive the result.
ProxyInputs proxy_inputs(const io::Checkpoint& checkpoint, const SearchStats& stats, const engine::RunnerOptions& options,
                         bool network = true, WeightHolding holding = WeightHolding::Auto);

// Configurations PHO evaluates before its CMA-ES runs, one evaluation each, on top of --budget:
// for each searched group, plain RIA ("ria layer", "ria row") and, when its kernel is searched,
// `crepe prune`'s defaults ("defaults layer", ...). They compete for the result, so PHO never returns
// a configuration its own proxy rates worse than either: CMA-ES samples around its start but never
// evaluates it, and RIA lies on gamma's floor, five step sizes away.
struct Anchor {
  std::string name;
  Candidate candidate;
};
std::vector<Anchor> pho_anchors(const std::vector<int64_t>& kernels, const std::vector<prune::Group>& groups);

// The anchors, then one CMA-ES run per (k, group) pair; the trace is written after the anchors and
// after every generation. `seconds` and `seconds_to_best` count every session of a resumed search.
// InputError naming --proxy when no evaluation gave a finite value.
SearchResult pho_search(const ProxyInputs& inputs, const prune::MaskSpec& mask, const PhoOptions& options);

// The trace a --resume continues, as JSON: InputError naming `path` when there is none ("nothing to
// resume") or it is not JSON. pho_search reads it so; a command may too, before costly work.
nlohmann::json read_trace(const std::string& path);

// Real perplexity of a configuration: prunes the whole model sequentially on the calibration ids
// and, block by block, runs the evaluation windows through each pruned block (no checkpoint is
// written). Returns the perplexity.
double pruned_perplexity(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids, const at::Tensor& eval_ids,
                         const prune::PruneConfig& config, const engine::RunnerOptions& options);

struct HillClimbOptions {
  std::vector<int64_t> kernels = {1, 3, 5, 7};
  std::vector<prune::Group> groups = {prune::Group::Layer, prune::Group::Row};  // one: the group is not searched
  int64_t budget = 40;  // perplexity evaluations
  bool progress = true;
};

// The paper's baseline: coordinate hill climbing on (k, beta, gamma, a, group) with real
// perplexity, starting from `start`, in PHO's box (so gamma can reach 0 and leave it): each round
// tries every coordinate one step up and down (beta and gamma by a factor of 2, a by 0.2, clipped to
// the box; k to its neighbours in options.kernels, not while gamma = 0, where k changes nothing;
// the group: the other of options.groups, when there are two), moves to the first that improves,
// and halves the steps when none does, down to a factor of 1.2. No candidate is evaluated twice.
SearchResult hill_climb(const std::function<double(const Candidate&)>& perplexity_of, const Candidate& start,
                        const HillClimbOptions& options);

nlohmann::json candidate_json(const Candidate& candidate);
// The inverse, for files candidate_json wrote; InputError naming `source` for a missing or invalid value.
Candidate candidate_from_json(const nlohmann::json& j, const std::string& source);
// Spearman's rank correlation (ties get average ranks); pairs with a NaN are left out, and fewer
// than two pairs, or no spread, give 0.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace crepe::search

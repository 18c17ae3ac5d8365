// PHO's parts: proxies against their definitions, the statistics cache, the search loops.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "crepe/core/error.hpp"
#include "crepe/core/interrupt.hpp"
#include "crepe/search/layer_stats.hpp"
#include "crepe/search/pho.hpp"
#include "crepe/search/proxy.hpp"
#include "test_support.hpp"

namespace crepe::search {
namespace {

TEST(Proxy, GiniCoefficientKnownValues) {
  EXPECT_NEAR(gini_coefficient(at::tensor({1.0, 1.0, 1.0, 1.0})), 0.0, 1e-12);   // perfect equality
  EXPECT_NEAR(gini_coefficient(at::tensor({0.0, 0.0, 0.0, 4.0})), 0.75, 1e-12);  // (n-1)/n for one holder
  // 1,2,3,4: sum_i (2i-5) x_(i) = -3 -2 +3 +12 = 10; / (4 * 10) = 0.25.
  EXPECT_NEAR(gini_coefficient(at::tensor({4.0, 1.0, 3.0, 2.0})), 0.25, 1e-12);
}

TEST(Proxy, ReconstructionProxiesMatchTheirDefinitions) {
  at::manual_seed(1);
  const at::Tensor W = at::randn({6, 10});
  const at::Tensor X = at::randn({50, 10});
  prune::StatsAccumulator acc({/*gram=*/true, false});
  acc.add(X);
  const prune::InputStats stats = acc.take();
  Candidate c;
  c.crepe.gamma = 0.3;
  prune::MaskSpec mask;
  mask.sparsity = 0.5;
  ProxyInputs inputs;
  inputs.layers.push_back({W, "W", &stats});
  const auto values = proxy_values(inputs, c, mask, {Proxy::Gini, Proxy::Recon, Proxy::ReconDiag});
  const at::Tensor keep = prune::select_mask(prune::crepe_score(W, stats.norm(), c.crepe), mask);
  const at::Tensor dW = W * keep.logical_not();
  // Output error of the removed weights over the calibration tokens, relative to the output energy.
  const double expected = at::matmul(X, dW.t()).pow(2).sum().item<double>() / at::matmul(X, W.t()).pow(2).sum().item<double>();
  EXPECT_NEAR(values.at(Proxy::Recon), expected, 1e-5 * expected);
  const double diag = (dW.pow(2) * X.pow(2).sum(0)).sum().item<double>() / (W.pow(2) * X.pow(2).sum(0)).sum().item<double>();
  EXPECT_NEAR(values.at(Proxy::ReconDiag), diag, 1e-5 * diag);
  EXPECT_GT(values.at(Proxy::Gini), 0.0);
  EXPECT_LT(values.at(Proxy::Gini), 1.0);
}

TEST(Pho, SpearmanKnownValues) {
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
  // d = (0, 0, 1, -1): rho = 1 - 6 * 2 / (4 * 15) = 0.8
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {1, 2, 4, 3}), 0.8, 1e-12);
  // A NaN (a collapsed model's perplexity) has no rank: its pair is left out.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NEAR(spearman({1, 2, nan, 3, 4}, {1, 2, 0, 4, 3}), 0.8, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4, 5}, {4, 3, 2, 1, nan}), -1.0, 1e-12);
  EXPECT_EQ(spearman({nan, 1}, {1, 2}), 0.0);
}

TEST(Pho, CandidatesMapTheBoxToCrepeParameters) {
  const Candidate c = candidate_from({0.0, -1.0, 2.0}, 5, prune::Group::Row);
  EXPECT_EQ(c.crepe.kernel_size, 5);
  EXPECT_DOUBLE_EQ(c.crepe.alpha, 1.0);
  EXPECT_DOUBLE_EQ(c.crepe.beta, 1.0);
  EXPECT_NEAR(c.crepe.gamma, 0.1, 1e-15);
  EXPECT_DOUBLE_EQ(c.crepe.act_power, 0.5);
  EXPECT_EQ(c.group, prune::Group::Row);
  EXPECT_NO_THROW(prune::validate(candidate_from(lower_bounds(), 1, prune::Group::Layer).crepe));
  EXPECT_NO_THROW(prune::validate(candidate_from(upper_bounds(), 7, prune::Group::Layer).crepe));
  // gamma's floor is gamma = 0, so plain RIA is a point of the box; just above it, 10^x as elsewhere.
  EXPECT_EQ(candidate_from({0.0, lower_bounds()[1], 2.0}, 3, prune::Group::Layer).crepe.gamma, 0.0);
  EXPECT_NEAR(candidate_from({0.0, lower_bounds()[1] + 0.5, 2.0}, 3, prune::Group::Layer).crepe.gamma,
              std::pow(10.0, lower_bounds()[1] + 0.5), 1e-18);
}

// At a large model's width (2048 x 2048 here: each relative importance ~5e-4) the floor of gamma's
// range must mean what plain RIA means: the same scores, not scores moved by a 1e-4 neighbourhood
// term (with k = 1 that term is gamma itself).
TEST(Pho, GammasFloorIsPlainRia) {
  at::manual_seed(3);
  const at::Tensor W = at::randn({2048, 2048});
  const at::Tensor act = at::rand({2048}) + 0.1;
  const Candidate floor = candidate_from({0.0, lower_bounds()[1], 2.0}, 1, prune::Group::Layer);
  const at::Tensor ria = prune::ria_score(W, act, 0.5);
  EXPECT_TRUE(at::allclose(prune::crepe_score(W, act, floor.crepe), ria, 1e-6, 0));
  prune::CrepeParams tiny = floor.crepe;
  tiny.gamma = 1e-4;  // what the floor meant before: scores move by about a tenth
  EXPECT_FALSE(at::allclose(prune::crepe_score(W, act, tiny), ria, 1e-2, 0));
}

TEST(Pho, SearchBeatsItsAnchorsAndResumesFromItsTrace) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  at::manual_seed(2);
  const at::Tensor ids = at::randint(512, {4, 64}, at::TensorOptions().dtype(at::kLong));
  const engine::RunnerOptions run = test::test_runner_options();
  const SearchStats stats = collect_search_stats(ckpt, ids, {0, 4}, run, {{"test", 1}, {"blocks", {0, 4}}});
  ASSERT_EQ(stats.blocks.size(), 2u);
  EXPECT_EQ(stats.blocks[1].block, 4);
  const ProxyInputs inputs = proxy_inputs(ckpt, stats, run);
  ASSERT_EQ(inputs.layers.size(), 14u);
  EXPECT_EQ(inputs.network, nullptr);  // no subsample kept
  prune::MaskSpec mask;
  mask.sparsity = 0.6;
  test::TempDir dir;
  PhoOptions options;
  options.kernels = {3, 5};  // two (k, group) pairs: the overall best is tracked across them
  options.groups = {prune::Group::Layer};
  options.budget = 30;
  options.progress = false;
  options.trace_path = dir.file("trace.json");
  const SearchResult result = pho_search(inputs, mask, options);
  auto recon_diag = [&](const Candidate& c) { return proxy_values(inputs, c, mask, {Proxy::ReconDiag}).at(Proxy::ReconDiag); };
  // The anchors were judged first, and the result is no worse than either.
  const std::vector<Anchor> anchors = pho_anchors(options.kernels, options.groups);
  ASSERT_EQ(anchors.size(), 2u);
  EXPECT_EQ(anchors[0].name, "ria layer");
  EXPECT_EQ(anchors[0].candidate.crepe.gamma, 0.0);
  EXPECT_EQ(anchors[1].name, "defaults layer");
  EXPECT_DOUBLE_EQ(anchors[1].candidate.crepe.gamma, prune::crepe_defaults().gamma);
  for (size_t i = 0; i < anchors.size(); ++i) {
    const double value = recon_diag(anchors[i].candidate);
    EXPECT_DOUBLE_EQ(result.anchors.at(anchors[i].name).get<double>(), value) << anchors[i].name;
    EXPECT_DOUBLE_EQ(result.trace[i].value, value);
    EXPECT_LE(result.best_value, value) << anchors[i].name;
  }
  EXPECT_EQ(result.evaluations, 2 + 28);  // the anchors, then 15 each for 2 pairs: 2 whole generations of 7 each
  EXPECT_EQ(result.trace.size(), 30u);
  EXPECT_NEAR(recon_diag(result.best), result.best_value, 1e-12);
  ASSERT_GE(result.evaluations_to_best, 1);
  ASSERT_LE(result.evaluations_to_best, result.evaluations);
  EXPECT_DOUBLE_EQ(result.trace[result.evaluations_to_best - 1].value, result.best_value);  // when it was found
  EXPECT_LE(result.seconds_to_best, result.seconds);
  // Resuming a finished search re-evaluates nothing and returns the same best point.
  options.resume = true;
  const SearchResult resumed = pho_search(inputs, mask, options);
  EXPECT_EQ(resumed.trace.size(), 0u);
  EXPECT_DOUBLE_EQ(resumed.best_value, result.best_value);
  EXPECT_EQ(resumed.evaluations_to_best, result.evaluations_to_best);  // carried in the trace
  EXPECT_EQ(resumed.evaluations, result.evaluations);
  EXPECT_DOUBLE_EQ(resumed.seconds_to_best, result.seconds_to_best);
  // The earlier session's time counts (as saved with its last generation).
  const double saved = nlohmann::json::parse(test::read_file(options.trace_path)).at("_progress").at("seconds").get<double>();
  EXPECT_GT(saved, 0.5 * result.seconds);
  EXPECT_GE(resumed.seconds, saved);

  // Stopped in the middle of a generation of the second pair, then resumed: the same search as the
  // uninterrupted one, which re-evaluates only the unfinished generation.
  options.resume = false;
  options.trace_path = dir.file("stopped.json");
  options.on_evaluation = [](int64_t evaluations) {
    if (evaluations == 2 + 14 + 3) throw Interrupted{};
  };
  EXPECT_THROW(pho_search(inputs, mask, options), Interrupted);
  options.on_evaluation = nullptr;
  options.resume = true;
  const SearchResult continued = pho_search(inputs, mask, options);
  EXPECT_EQ(continued.trace.size(), 14u);  // the second pair's two generations, the first one again
  EXPECT_EQ(continued.evaluations, result.evaluations);
  EXPECT_EQ(continued.best_value, result.best_value);
  EXPECT_EQ(candidate_json(continued.best), candidate_json(result.best));
  EXPECT_EQ(continued.evaluations_to_best, result.evaluations_to_best);
  EXPECT_EQ(continued.summary, result.summary);

  // A pair's CMA-ES options edited to another population or budget: refused, not run (a population
  // of 1e9 would exhaust the memory, a budget of 1e15 never end).
  const nlohmann::json finished = nlohmann::json::parse(test::read_file(options.trace_path));
  for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"lambda", 1000000000}, {"max_evaluations", int64_t{1000000000000000}}, {"sigma0", 0.9}}) {
    nlohmann::json edited = finished;
    edited["k=3 layer"]["state"]["options"][field] = value;
    test::write_file(options.trace_path, edited.dump());
    const std::string message = test::input_error_of([&] { pho_search(inputs, mask, options); });
    EXPECT_EQ(message, options.trace_path + ": invalid search trace: a CMA-ES state's options (population, budget, "
                                            "bounds, start) are not this search's; run without --resume") << field;
  }
}

// An edited or damaged trace is refused, naming it, before anything is evaluated: a best point
// outside the box or of the wrong length would otherwise become the written configuration.
TEST(Pho, ResumeRefusesATraceItCouldNotHaveWritten) {
  test::TempDir dir;
  PhoOptions options;
  options.resume = true;
  options.progress = false;
  options.trace_path = dir.file("trace.json");
  const ProxyInputs nothing;  // never reached
  const prune::MaskSpec mask;
  const nlohmann::json pair = {{"state", nlohmann::json::object()}, {"best_x", {0.0, -1.0, 2.0}}, {"best", 0.5}};
  for (const auto& [edit, phrase] : std::vector<std::pair<nlohmann::json, std::string>>{
           {{{"k=3 layer", {{"state", nlohmann::json::object()}, {"best_x", {1.0}}}}}, "best_x"},
           {{{"k=3 layer", {{"state", nlohmann::json::object()}, {"best_x", {100.0, 100.0, 100.0}}}}}, "best_x"},
           {{{"k=3 layer", {{"state", nlohmann::json::object()}, {"best_x", {"a", "b", "c"}}}}}, "best_x"},
           {{{"k=3 layer", {{"state", nlohmann::json::object()}, {"best", "x"}}}}, "best"},
           {{{"k=3 layer", 7}}, "no CMA-ES state"},
           {{{"_progress", "x"}}, "_progress"},
           {{{"_progress", {{"evaluations", "many"}}}}, "_progress.evaluations"},
           {{{"_anchors", {{"ria layer", true}}}}, "ria layer"},
           {{{"k=3 layer", pair}}, "cmaes state"}}) {  // a well-formed pair whose state is not CMA-ES's
    nlohmann::json trace = {{"_request", options.request}};
    trace.update(edit);
    test::write_file(options.trace_path, trace.dump());
    const std::string message = test::input_error_of([&] { pho_search(nothing, mask, options); });
    EXPECT_EQ(message.rfind(options.trace_path + ": invalid search trace", 0), 0u) << message;
    EXPECT_NE(message.find(phrase), std::string::npos) << message;
  }
}

TEST(Pho, NofMSearchesOneComparisonGroup) {
  // An N:M mask does not depend on the group: the whole budget goes to distinct configurations.
  prune::MaskSpec unstructured, two_four;
  two_four.pattern = prune::parse_pattern("2:4");
  const std::vector<prune::Group> both = {prune::Group::Row, prune::Group::Layer};
  EXPECT_EQ(searched_groups(unstructured, both), both);
  EXPECT_EQ(searched_groups(two_four, both), std::vector<prune::Group>{prune::Group::Row});

  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  at::manual_seed(5);
  const at::Tensor ids = at::randint(512, {2, 32}, at::TensorOptions().dtype(at::kLong));
  const engine::RunnerOptions run = test::test_runner_options();
  const SearchStats stats = collect_search_stats(ckpt, ids, {1}, run, {{"test", 2}});
  const ProxyInputs inputs = proxy_inputs(ckpt, stats, run);
  test::TempDir dir;
  PhoOptions options;
  options.kernels = {3};
  options.groups = both;
  options.budget = 16;
  options.progress = false;
  options.trace_path = dir.file("trace.json");
  const SearchResult result = pho_search(inputs, two_four, options);
  ASSERT_EQ(result.summary.size(), 1u);
  EXPECT_TRUE(result.summary.contains("k=3 row"));
  EXPECT_EQ(result.best.group, prune::Group::Row);
  EXPECT_EQ(result.evaluations, 2 + 14);  // the anchors, then the whole budget on the one pair, in whole generations
  for (const TracePoint& p : result.trace) EXPECT_EQ(p.candidate.group, prune::Group::Row);
}

TEST(Pho, BudgetIsALimitInWholeGenerations) {
  EXPECT_EQ(generations_per_pair(168, 8), 3);
  EXPECT_EQ(generations_per_pair(448, 8), 8);
  EXPECT_EQ(generations_per_pair(168, 4), 6);  // an N:M search: one group
  EXPECT_EQ(generations_per_pair(7, 1), 1);
  EXPECT_THROW(generations_per_pair(55, 8), InputError);  // 8 pairs need 56
  try {
    generations_per_pair(40, 8);
    ADD_FAILURE() << "a budget of 40 for 8 pairs was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("give at least 56"), std::string::npos) << e.what();
  }
  EXPECT_EQ(default_budget(Proxy::Kl) % (8 * kPhoGeneration), 0);
  EXPECT_EQ(default_budget(Proxy::ReconDiag) % (8 * kPhoGeneration), 0);
}

TEST(Pho, StatisticsCacheIsReusedOnlyForTheSameRequest) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  at::manual_seed(3);
  const at::Tensor ids = at::randint(512, {2, 32}, at::TensorOptions().dtype(at::kLong));
  const engine::RunnerOptions run = test::test_runner_options();
  const nlohmann::json provenance = {{"model", "stories260k"}, {"blocks", {1, 2}}};
  const SearchStats stats = collect_search_stats(ckpt, ids, {1, 2}, run, provenance);
  test::TempDir dir;
  save_search_stats(dir.file("stats.safetensors"), stats);
  std::string why;
  const auto same = load_search_stats(dir.file("stats.safetensors"), provenance, &why);
  ASSERT_TRUE(same.has_value()) << why;
  for (size_t b = 0; b < 2; ++b) {
    for (int i = 0; i < model::kLinearInputCount; ++i) {
      EXPECT_TRUE(at::equal(same->blocks[b].inputs[i].gram, stats.blocks[b].inputs[i].gram));
      EXPECT_EQ(same->blocks[b].inputs[i].tokens, 64);
    }
  }
  nlohmann::json other = provenance;
  other["model"] = "something else";
  EXPECT_FALSE(load_search_stats(dir.file("stats.safetensors"), other, &why).has_value());
  EXPECT_NE(why.find("another"), std::string::npos);
  test::write_file(dir.file("junk.safetensors"), "not a safetensors file at all");
  EXPECT_THROW(load_search_stats(dir.file("junk.safetensors"), provenance), InputError);
}

TEST(Pho, GramMatricesAreCollectedOnlyWhenAskedAndACacheWithoutThemServesOnlyProxiesThatDoNotNeedThem) {
  c10::InferenceMode guard;
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/stories260k"));
  at::manual_seed(4);
  const at::Tensor ids = at::randint(512, {2, 32}, at::TensorOptions().dtype(at::kLong));
  const engine::RunnerOptions run = test::test_runner_options();
  const nlohmann::json provenance = {{"model", "stories260k"}, {"blocks", {0, 3}}};
  const SearchStats lean = collect_search_stats(ckpt, ids, {0, 3}, run, provenance, {}, /*with_gram=*/false);
  const SearchStats full = collect_search_stats(ckpt, ids, {0, 3}, run, provenance, {}, /*with_gram=*/true);
  EXPECT_FALSE(has_gram(lean));
  EXPECT_TRUE(has_gram(full));
  for (size_t b = 0; b < 2; ++b) {
    for (int i = 0; i < model::kLinearInputCount; ++i) {  // the same pass otherwise
      EXPECT_TRUE(at::equal(lean.blocks[b].inputs[i].sq_sum, full.blocks[b].inputs[i].sq_sum));
    }
  }
  // recon needs them; the others do not, and give the same values either way.
  const ProxyInputs without = proxy_inputs(ckpt, lean, run), with = proxy_inputs(ckpt, full, run);
  std::string why;
  EXPECT_FALSE(available(Proxy::Recon, without, &why));
  EXPECT_NE(why.find("Gram"), std::string::npos);
  EXPECT_TRUE(available(Proxy::Recon, with));
  prune::MaskSpec mask;
  mask.sparsity = 0.5;
  const Candidate c = candidate_from({0.0, -1.0, 2.0}, 3, prune::Group::Layer);
  const auto a = proxy_values(without, c, mask, {Proxy::Gini, Proxy::ReconDiag});
  const auto b = proxy_values(with, c, mask, {Proxy::Gini, Proxy::ReconDiag});
  EXPECT_DOUBLE_EQ(a.at(Proxy::Gini), b.at(Proxy::Gini));
  EXPECT_DOUBLE_EQ(a.at(Proxy::ReconDiag), b.at(Proxy::ReconDiag));
  EXPECT_THROW(proxy_values(without, c, mask, {Proxy::Recon}), InputError);
  // A cache without Gram matrices is reused for a request without them, and not for one with.
  test::TempDir dir;
  save_search_stats(dir.file("lean.safetensors"), lean);
  const auto reused = load_search_stats(dir.file("lean.safetensors"), provenance, &why, /*need_gram=*/false);
  ASSERT_TRUE(reused.has_value()) << why;
  EXPECT_FALSE(has_gram(*reused));
  EXPECT_TRUE(at::equal(reused->blocks[1].inputs[2].sq_sum, lean.blocks[1].inputs[2].sq_sum));
  EXPECT_FALSE(load_search_stats(dir.file("lean.safetensors"), provenance, &why, /*need_gram=*/true).has_value());
  EXPECT_NE(why.find("Gram"), std::string::npos);
  save_search_stats(dir.file("full.safetensors"), full);
  EXPECT_TRUE(load_search_stats(dir.file("full.safetensors"), provenance, &why, /*need_gram=*/true).has_value()) << why;
}

TEST(Pho, HillClimbingFindsTheMinimumOfASmoothObjective) {
  // A synthetic "perplexity" with its optimum at k = 5, beta = 4, gamma = 0.25, a = 0.3, group row.
  auto objective = [](const Candidate& c) {
    return std::pow(std::log2(c.crepe.beta) - 2, 2) + std::pow(std::log2(c.crepe.gamma) + 2, 2) +
           10 * std::pow(c.crepe.act_power - 0.3, 2) + (c.crepe.kernel_size == 5 ? 0 : 1) +
           (c.group == prune::Group::Row ? 0 : 1);
  };
  Candidate start;
  start.crepe.gamma = 1.0;
  HillClimbOptions options;
  options.budget = 200;
  options.progress = false;
  const SearchResult r = hill_climb(objective, start, options);
  EXPECT_EQ(r.best.crepe.kernel_size, 5);
  EXPECT_EQ(r.best.group, prune::Group::Row);
  // Positions live on a 1e-9 grid of the box (log10 for beta and gamma): within ~1e-8 relative.
  EXPECT_NEAR(r.best.crepe.beta, 4.0, 1e-7);
  EXPECT_NEAR(r.best.crepe.gamma, 0.25, 1e-8);
  EXPECT_NEAR(r.best.crepe.act_power, 0.3, 1e-9);
  EXPECT_LE(r.evaluations, 200);
  ASSERT_GE(r.evaluations_to_best, 1);
  EXPECT_DOUBLE_EQ(r.trace[r.evaluations_to_best - 1].value, r.best_value);
  EXPECT_LT(r.trace[r.evaluations_to_best - 1].value, objective(start));

  // With one group (an N:M search) the group is never flipped, though the objective prefers row.
  options.groups = {prune::Group::Layer};
  const SearchResult one = hill_climb(objective, start, options);
  EXPECT_EQ(one.best.crepe.kernel_size, 5);
  for (const TracePoint& p : one.trace) EXPECT_EQ(p.candidate.group, prune::Group::Layer);
}

// Plain RIA (gamma = 0) is a point of the hill climb's space, as of PHO's: from crepe's defaults
// (gamma = 0.25) the climb walks gamma down to its floor and lands on exactly 0, and while gamma is
// 0 it spends nothing on kernel sizes, which could not change the mask. No point is judged twice.
TEST(Pho, HillClimbingReachesGammaZeroAndWastesNoEvaluations) {
  // The optimum moves a and beta too (a = 0.7, beta = 2), so the climb steps back and forth along
  // every coordinate; the steps' sums must still bring it back to points it has judged.
  auto objective = [](const Candidate& c) {
    return c.crepe.gamma + std::pow(std::log2(c.crepe.beta) - 1, 2) + std::pow(c.crepe.act_power - 0.7, 2);
  };
  Candidate start;
  start.crepe = prune::crepe_defaults();
  HillClimbOptions options;
  options.budget = 120;
  options.progress = false;
  options.groups = {prune::Group::Layer};
  const SearchResult r = hill_climb(objective, start, options);
  EXPECT_EQ(r.best.crepe.gamma, 0.0);
  EXPECT_NEAR(r.best_value, 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(r.trace.front().value, objective(start));
  // Judged twice = the same mask: same group, beta, gamma and a to 1e-6 (rounding apart), and the
  // same kernel unless gamma = 0.
  std::set<std::vector<int64_t>> seen;
  for (size_t i = 0; i < r.trace.size(); ++i) {
    const prune::CrepeParams& p = r.trace[i].candidate.crepe;
    const std::vector<int64_t> key = {p.gamma == 0 ? 0 : p.kernel_size, static_cast<int64_t>(r.trace[i].candidate.group),
                                      std::llround(std::log10(p.beta) * 1e6), std::llround(p.gamma * 1e6),
                                      std::llround(p.act_power * 1e6)};
    EXPECT_TRUE(seen.insert(key).second) << "evaluated twice: " << candidate_json(r.trace[i].candidate).dump();
  }
  EXPECT_NEAR(r.best.crepe.act_power, 0.7, 1e-9);
  EXPECT_NEAR(r.best.crepe.beta, 2.0, 1e-6);
  // A coefficient the climb has not moved keeps the start's exact value, not a grid-rounded copy of
  // it (a written configuration would otherwise say beta = 0.4999999996).
  for (const TracePoint& t : r.trace) {
    const prune::CrepeParams& p = t.candidate.crepe;
    for (auto [value, at_start] : {std::pair{p.beta, start.crepe.beta}, std::pair{p.gamma, start.crepe.gamma},
                                   std::pair{p.act_power, start.crepe.act_power}}) {
      EXPECT_TRUE(value == at_start || std::abs(value - at_start) > 1e-6 * at_start)
          << value << " is a rounded copy of " << at_start << " in " << candidate_json(t.candidate).dump();
    }
  }
  // Once at gamma = 0 the climb only tries beta, gamma and a: every later point keeps the kernel.
  const auto first_zero = std::find_if(r.trace.begin(), r.trace.end(), [](const TracePoint& p) { return p.candidate.crepe.gamma == 0; });
  ASSERT_NE(first_zero, r.trace.end());
  for (auto p = first_zero; p != r.trace.end(); ++p) EXPECT_EQ(p->candidate.crepe.kernel_size, first_zero->candidate.crepe.kernel_size);
  // And from gamma = 0 it can leave: an objective that wants gamma = 0.5 gets there from plain RIA.
  auto wants_gamma = [](const Candidate& c) { return std::pow(std::log2(std::max(c.crepe.gamma, 1e-9)) + 1, 2); };
  Candidate ria;
  ria.crepe = prune::ria_params();
  ria.crepe.kernel_size = 3;
  options.budget = 200;
  // Up from the floor (log10 gamma = -4) 0.5 is not on the steps' grid: within the finest half-step.
  const double found = hill_climb(wants_gamma, ria, options).best.crepe.gamma;
  ASSERT_GT(found, 0.0);
  EXPECT_NEAR(std::log10(found), std::log10(0.5), std::log10(2.0) / 8);
}

TEST(Pho, LayerSelection) {
  EXPECT_EQ(parse_layer_selection("all", 4, "--layers"), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(parse_layer_selection("3", 32, "--layers"), (std::vector<int64_t>{0, 15, 31}));
  EXPECT_EQ(parse_layer_selection("5,1,5", 8, "--layers"), (std::vector<int64_t>{1, 5}));
  EXPECT_THROW(parse_layer_selection("9", 8, "--layers"), InputError);
  EXPECT_THROW(parse_layer_selection("1,x", 8, "--layers"), InputError);
  // The whole text, not a prefix: "2x" is not 2 blocks, nor "1,3.5" blocks 1 and 3.
  EXPECT_THROW(parse_layer_selection("2x", 8, "--layers"), InputError);
  EXPECT_THROW(parse_layer_selection("1,3.5", 8, "--layers"), InputError);
  EXPECT_THROW(parse_layer_selection("1, 3", 8, "--layers"), InputError);
}

}  // namespace
}  // namespace crepe::search

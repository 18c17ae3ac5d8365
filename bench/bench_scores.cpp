// Scoring time of every metric on one weight matrix (default 4096 x 11008, LLaMA-7B's MLP shape):
// median of several runs, plus CRePE's time relative to RIA, and the device's matmul rate as the
// yardstick for calibration throughput (fp32, and bf16 on CUDA; --matmul-size N, 2048 by default).
// Prints a markdown table and, with --json FILE, writes the numbers there.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/permutation.hpp"

using namespace crepe::prune;

namespace {

double median_seconds(const std::function<void()>& work, int repeats) {
  work();  // warm-up
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    work();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 4096, cols = 11008;
  int repeats = 5;
  int64_t matmul_size = 2048;
  std::string json_path;
  std::string device = "cpu";
  std::string permute_blocks;  // e.g. "64,16,4": time --permute (2:4) with each block count, once
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rows" && i + 1 < argc) rows = std::stoll(argv[++i]);
    else if (a == "--cols" && i + 1 < argc) cols = std::stoll(argv[++i]);
    else if (a == "--repeats" && i + 1 < argc) repeats = std::stoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--matmul-size" && i + 1 < argc) matmul_size = std::stoll(argv[++i]);
    else if (a == "--permute-blocks" && i + 1 < argc) permute_blocks = argv[++i];
  }
  c10::InferenceMode guard;
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  at::manual_seed(0);
  const auto opts = at::TensorOptions().device(at::Device(device));
  const at::Tensor W = at::randn({rows, cols}, opts);
  const at::Tensor act_norm = at::rand({cols}, opts) + 0.1;
  CrepeParams crepe;
  crepe.kernel_size = 5;
  crepe.gamma = 0.5;
  MaskSpec mask;

  struct Row {
    std::string name;
    double seconds;
  };
  std::vector<Row> results;
  auto sync = [&] { (void)W.sum().item<float>(); };
  auto time = [&](const std::string& name, const std::function<at::Tensor()>& f) {
    results.push_back({name, median_seconds([&] { f(); sync(); }, repeats)});
  };
  time("magnitude", [&] { return magnitude_score(W); });
  time("wanda", [&] { return wanda_score(W, act_norm); });
  time("ri", [&] { return ri_score(W); });
  time("ria", [&] { return ria_score(W, act_norm); });
  for (int64_t k : {3, 5, 7, 31}) {
    crepe.kernel_size = k;
    time("crepe k=" + std::to_string(k), [&] { return crepe_score(W, act_norm, crepe); });
  }
  time("mask 50% layer", [&] { return select_mask(W, mask); });
  mask.group = Group::Row;
  time("mask 50% row", [&] { return select_mask(W, mask); });
  mask.pattern = parse_pattern("2:4");
  time("mask 2:4", [&] { return select_mask(W, mask); });
  // RIA's channel permutation for 2:4 on the CRePE scores, once per block count (it is slow: one
  // run each), with the kept-score gain it buys.
  std::vector<std::pair<int64_t, PermutationReport>> permutations;
  std::vector<double> permutation_seconds;
  if (!permute_blocks.empty()) {
    const at::Tensor scores = crepe_score(W, act_norm, crepe);
    std::stringstream list(permute_blocks);
    for (std::string item; std::getline(list, item, ',');) {
      PermutationOptions options;
      options.blocks = std::stoll(item);
      PermutationReport report;
      const auto start = std::chrono::steady_clock::now();
      (void)nm_channel_permutation(scores, 2, 4, options, &report);
      permutation_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      permutations.emplace_back(options.blocks, report);
      std::fprintf(stderr, "permutation, %lld blocks: %.1f s\n", static_cast<long long>(options.blocks), permutation_seconds.back());
    }
  }
  // The device's matmul rate, the yardstick for calibration throughput.
  auto matmul_gflops_in = [&](c10::ScalarType dtype) {
    const int64_t n = matmul_size;
    const at::Tensor a = at::randn({n, n}, opts.dtype(dtype)), b = at::randn({n, n}, opts.dtype(dtype));
    const double seconds = median_seconds([&] { (void)at::matmul(a, b).sum().item<float>(); }, repeats);
    return 2.0 * double(n) * double(n) * double(n) / seconds / 1e9;
  };
  const double matmul_gflops = matmul_gflops_in(at::kFloat);
  const bool cuda = at::Device(device).is_cuda();
  const double matmul_gflops_bf16 = cuda ? matmul_gflops_in(at::kBFloat16) : 0.0;

  const double ria = std::find_if(results.begin(), results.end(), [](const Row& r) { return r.name == "ria"; })->seconds;
  std::printf("| metric | seconds | vs ria |\n|---|---|---|\n");
  nlohmann::ordered_json j;
  j["rows"] = rows;
  j["cols"] = cols;
  j["device"] = device;
  j["threads"] = at::get_num_threads();
  j["matmul_size"] = matmul_size;
  j["matmul_gflops"] = matmul_gflops;
  if (cuda) j["matmul_gflops_bf16"] = matmul_gflops_bf16;
  for (const Row& r : results) {
    std::printf("| %s | %.4f | %.2fx |\n", r.name.c_str(), r.seconds, r.seconds / ria);
    j["seconds"][r.name] = r.seconds;
  }
  if (!permutations.empty()) {
    std::printf("\n| --permute-blocks (2:4) | seconds | sweeps | kept score gain |\n|---|---|---|---|\n");
    for (size_t i = 0; i < permutations.size(); ++i) {
      const auto& [blocks, report] = permutations[i];
      const double gain = report.kept_before > 0 ? report.kept_after / report.kept_before - 1 : 0;
      std::printf("| %lld | %.1f | %lld | %+.3f%% |\n", static_cast<long long>(blocks), permutation_seconds[i],
                  static_cast<long long>(report.sweeps), 100 * gain);
      j["permutation"].push_back({{"blocks", blocks}, {"seconds", permutation_seconds[i]}, {"sweeps", report.sweeps},
                                  {"kept_before", report.kept_before}, {"kept_after", report.kept_after}});
    }
  }
  std::printf("\nfp32 matmul %lld^3: %.1f GFLOP/s (%d threads)\n", static_cast<long long>(matmul_size), matmul_gflops,
              at::get_num_threads());
  if (cuda) std::printf("bf16 matmul %lld^3: %.1f GFLOP/s\n", static_cast<long long>(matmul_size), matmul_gflops_bf16);
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return 0;
}

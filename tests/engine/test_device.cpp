// The CUDA path against the CPU path. These tests need a GPU and say so when skipped; everything
// they exercise is the same device-agnostic code the CPU tests cover.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cmath>

#include "crepe/core/device.hpp"
#include "crepe/engine/runner.hpp"
#include "crepe/eval/perplexity.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"
#include "test_support.hpp"

namespace crepe {
namespace {

bool have_cuda() { return at::hasCUDA(); }

#define REQUIRE_CUDA() \
  if (!have_cuda()) GTEST_SKIP() << "no CUDA device in this build or machine: GPU check not run"

TEST(Device, ScoresAndMasksMatchTheCpu) {
  REQUIRE_CUDA();
  c10::InferenceMode guard;
  at::manual_seed(0);
  const at::Tensor W = at::randn({512, 1376});
  const at::Tensor act = at::rand({1376}) + 0.1;
  prune::CrepeParams p;
  p.gamma = 0.25;
  for (prune::Metric m : {prune::Metric::Magnitude, prune::Metric::Wanda, prune::Metric::RI, prune::Metric::RIA,
                          prune::Metric::Crepe}) {
    const at::Tensor cpu = prune::score(m, W, act, p);
    const at::Tensor gpu = prune::score(m, W.cuda(), act.cuda(), p).cpu();
    EXPECT_TRUE(at::allclose(cpu, gpu, 1e-5, 1e-9)) << prune::metric_name(m);
    prune::MaskSpec spec;
    const at::Tensor mask_cpu = prune::select_mask(cpu, spec);
    const at::Tensor mask_gpu = prune::select_mask(gpu.cuda(), spec).cpu();
    // Masks agree except where the two score vectors order near-ties differently.
    EXPECT_LT((mask_cpu != mask_gpu).sum().item<int64_t>(), 8) << prune::metric_name(m);
  }
}

TEST(Device, PerplexityMatchesTheCpuInFloat32) {
  REQUIRE_CUDA();
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/mini-llama-6m"));
  at::manual_seed(1);
  const at::Tensor ids = at::randint(4096, {8, 128}, at::TensorOptions().dtype(at::kLong));
  engine::RunnerOptions cpu, gpu;
  cpu.progress = gpu.progress = false;
  gpu.placement.device = c10::Device(c10::kCUDA, 0);
  const double a = eval::perplexity(ckpt, ids, cpu).perplexity;
  const double b = eval::perplexity(ckpt, ids, gpu).perplexity;
  EXPECT_NEAR(a, b, 1e-3 * a);
}

TEST(Device, HostResidentActivationsGiveTheSamePerplexityPinnedOrNot) {
  REQUIRE_CUDA();
  const io::Checkpoint ckpt = io::Checkpoint::open(test::shared_path("models/mini-llama-6m"));
  const int64_t hidden = ckpt.config().hidden_size;
  engine::RunnerOptions resident, hosted;
  resident.progress = hosted.progress = false;
  resident.placement.device = hosted.placement.device = c10::Device(c10::kCUDA, 0);
  hosted.max_device_activation_bytes = 0;  // every state in host memory, uploaded per batch
  hosted.batch_size = 3;
  // 8 sequences of 64 fill a power-of-two buffer (pinned); 5 would waste 3/8 of one (pageable).
  for (int64_t count : {8, 5}) {
    at::manual_seed(2);
    const at::Tensor ids = at::randint(4096, {count, 64}, at::TensorOptions().dtype(at::kLong));
    engine::BlockRunner runner(ckpt, hosted);
    const at::Tensor states = runner.embed(ids);
    EXPECT_TRUE(states.device().is_cpu());
    EXPECT_EQ(states.is_pinned(), engine::worth_pinning(count * 64 * hidden * 4)) << count;
    EXPECT_NEAR(eval::perplexity(ckpt, ids, resident).perplexity, eval::perplexity(ckpt, ids, hosted).perplexity, 1e-6)
        << count;
  }
}

// The search's auto weight placement asks the CUDA runtime for free memory: it must be found (in a
// CUDA build of LibTorch) and follow a real allocation.
TEST(Device, FreeMemoryIsKnownAndFollowsAnAllocation) {
  REQUIRE_CUDA();
  const c10::Device cuda(c10::kCUDA, 0);
  const auto before = free_memory(cuda);
  ASSERT_TRUE(before.has_value()) << "cudaMemGetInfo was not found in the loaded CUDA runtime";
  constexpr int64_t kBlock = int64_t{1} << 30;
  ASSERT_GT(*before, 2 * kBlock);
  // A size LibTorch's caching allocator has not cached yet: it asks the driver for it.
  const at::Tensor block = at::empty({kBlock + 12345}, at::TensorOptions().dtype(at::kByte).device(cuda));
  const auto after = free_memory(cuda);
  ASSERT_TRUE(after.has_value());
  // Half of it, as tests running beside this one may free memory meanwhile.
  EXPECT_GE(*before - *after, kBlock / 2) << "free " << *before << " -> " << *after;
}

TEST(Device, CpuOnlyBuildsRefuseCudaClearly) {
  if (have_cuda()) GTEST_SKIP() << "this build has CUDA";
  const auto r = test::run_crepe({"eval", "--model", test::shared_path("models/stories260k"), "--data",
                                  test::shared_path("data/wikitext2-test.txt"), "--device", "cuda"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--device"), std::string::npos);
  EXPECT_NE(r.err.find("CUDA"), std::string::npos);
}

}  // namespace
}  // namespace crepe

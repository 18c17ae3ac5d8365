#include "crepe/prune/stats.hpp"

#include <ATen/ATen.h>


#include "crepe/core/device.hpp"
#include "crepe/core/error.hpp"

namespace crepe::prune {

at::Tensor InputStats::norm() const { return sq_sum.sqrt(); }

InputStats to_host(InputStats stats) {
  for (at::Tensor* t : {&stats.sq_sum, &stats.sum, &stats.within_sequence_sq_dev, &stats.gram}) {
    if (t->defined()) *t = t->cpu();
  }
  return stats;
}

at::Tensor InputStats::mean() const { return sum / static_cast<double>(std::max<int64_t>(tokens, 1)); }

at::Tensor InputStats::sequence_variance() const {
  return within_sequence_sq_dev / static_cast<double>(std::max<int64_t>(tokens, 1));
}

at::Tensor InputStats::sequence_sum() const {
  TORCH_CHECK(sequences > 0, "InputStats::sequence_sum: the number of calibration sequences was not recorded");
  return sum / static_cast<double>(sequences);
}

void require_finite_activations(const at::Tensor& values, const std::string& model_dir, const std::string& what,
                                c10::ScalarType compute_dtype) {
  if (at::isfinite(values).all().item<bool>()) return;
  throw NumericalInputError(model_dir + ": " + what + " are not finite (NaN or Inf): " + non_finite_cause(compute_dtype));
}

void require_finite(const InputStats& stats, const std::string& model_dir, int64_t block, const char* input,
                    c10::ScalarType compute_dtype) {
  require_finite_activations(stats.sq_sum, model_dir,
                             "the calibration activations entering block " + std::to_string(block) + "'s " + input,
                             compute_dtype);
}

namespace {

// Sum over sequences of each sequence's squared deviations from its own mean, [in], from the float32
// activations `flat` [tokens, in] in sequences of `seqlen` tokens. Two passes over each sequence
// (at::var), so a channel with a large mean keeps its small spread.
at::Tensor within_sequence_squared_deviations(const at::Tensor& flat, int64_t seqlen) {
  const at::Tensor sequences = flat.reshape({-1, seqlen, flat.size(1)});
  return at::var(sequences, /*dim=*/1, /*unbiased=*/false).sum(0) * static_cast<double>(seqlen);
}

}  // namespace

void StatsAccumulator::add(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2, "StatsAccumulator::add: activations must be [tokens, in] or [sequences, seq, in]");
  const at::Tensor flat = x.reshape({-1, x.size(-1)}).to(at::kFloat);
  const at::Tensor sq = flat.pow(2).sum(0);
  if (!stats_.sq_sum.defined()) {
    stats_.sq_sum = sq;
    if (request_.moments) {
      stats_.sum = flat.sum(0);
      stats_.within_sequence_sq_dev = within_sequence_squared_deviations(flat, x.size(-2));
    }
    if (request_.gram) stats_.gram = at::matmul(flat.t(), flat);
  } else {
    stats_.sq_sum.add_(sq);
    if (request_.moments) {
      stats_.sum.add_(flat.sum(0));
      stats_.within_sequence_sq_dev.add_(within_sequence_squared_deviations(flat, x.size(-2)));
    }
    if (request_.gram) stats_.gram.addmm_(flat.t(), flat);
  }
  stats_.tokens += flat.size(0);
  int64_t sequences = 1;
  for (int64_t d = 0; d + 2 < x.dim(); ++d) sequences *= x.size(d);
  stats_.sequences += sequences;
}

}  // namespace crepe::prune

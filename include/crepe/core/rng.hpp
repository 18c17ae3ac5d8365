#pragma once
// Deterministic random numbers: the same sequence on every platform, compiler and standard library
// (std::uniform_int_distribution is implementation-defined, so crepe never uses it). Every seeded
// component (calibration sampling, self-generated calibration, searches) takes an Rng explicitly.
#include <cstdint>

namespace crepe {

// SplitMix64 with unbiased bounded draws by rejection.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  // Uniform in [0, bound), bound > 0.
  uint64_t below(uint64_t bound);
  // Uniform in [0, 1) with 53 random bits.
  double uniform();

  // The whole generator state (SplitMix64's counter), so a saved search can resume its exact
  // stream: Rng r(seed); ... ; Rng copy(0); copy.set_state(r.state()) continues identically.
  uint64_t state() const { return state_; }
  void set_state(uint64_t state) { state_ = state; }

 private:
  uint64_t state_;
};

}  // namespace crepe

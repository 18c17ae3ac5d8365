#include "crepe/core/rng.hpp"

namespace crepe {

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t Rng::below(uint64_t bound) {
  // Reject the top sliver of the 64-bit range that would make some residues more likely.
  const uint64_t limit = bound * (UINT64_MAX / bound);
  uint64_t draw;
  do {
    draw = next();
  } while (draw >= limit);
  return draw % bound;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

}  // namespace crepe

// holds_exactly against the dtypes themselves: a round trip through the wider type must give back
// every value of the narrower one (checked on values that need each type's full mantissa and range).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "crepe/core/device.hpp"

namespace crepe {
namespace {

bool round_trips(c10::ScalarType narrow, c10::ScalarType wide) {
  // Values that use the narrow type's whole mantissa, its extremes and its subnormals.
  at::manual_seed(3);
  const double big = narrow == at::kHalf ? 6e4 : 1e30, tiny = narrow == at::kHalf ? 1e-7 : 1e-38;
  const at::Tensor values =
      at::cat({at::randn({4096}, at::kDouble), at::tensor({big, -big, tiny, -tiny}, at::kDouble)}).to(narrow);
  return at::equal(values.to(wide).to(narrow), values) && at::equal(values.to(wide).to(at::kDouble), values.to(at::kDouble));
}

TEST(Dtype, HoldsExactlyAgreesWithRoundTrips) {
  const c10::ScalarType types[] = {at::kHalf, at::kBFloat16, at::kFloat};
  for (c10::ScalarType narrow : types) {
    for (c10::ScalarType wide : types) {
      EXPECT_EQ(holds_exactly(wide, narrow), round_trips(narrow, wide))
          << dtype_name(wide) << " holding " << dtype_name(narrow);
    }
  }
  EXPECT_TRUE(holds_exactly(at::kFloat, at::kBFloat16));
  EXPECT_FALSE(holds_exactly(at::kBFloat16, at::kHalf));  // the case that rounded kept weights
}

}  // namespace
}  // namespace crepe

// Strict integer parsing: the whole text is the number, or it is refused.
#include <gtest/gtest.h>

#include "crepe/core/parse.hpp"

namespace crepe {
namespace {

TEST(Parse, IntegerIsTheWholeText) {
  EXPECT_EQ(parse_integer("0"), 0);
  EXPECT_EQ(parse_integer("17"), 17);
  EXPECT_EQ(parse_integer("-3"), -3);
  EXPECT_EQ(parse_integer("9223372036854775807"), INT64_MAX);
  for (const char* bad : {"", "-", "2x", "3.5", " 4", "4 ", "+4", "0x10", "1e3", "9223372036854775808"}) {
    EXPECT_FALSE(parse_integer(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace crepe

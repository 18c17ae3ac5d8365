// Strict integer parsing: the whole text is the number, or it is refused; numbers in messages are short.
#include <gtest/gtest.h>

#include <limits>

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

TEST(Parse, NumberTextIsShort) {
  EXPECT_EQ(number_text(0.5), "0.5");
  EXPECT_EQ(number_text(0.7), "0.7");
  EXPECT_EQ(number_text(-3), "-3");
  EXPECT_EQ(number_text(1e300), "1e+300");
  EXPECT_EQ(number_text(1.0 / 3.0), "0.3333333333");
  EXPECT_EQ(number_text(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(number_text(-std::numeric_limits<double>::infinity()), "-inf");
}

}  // namespace
}  // namespace crepe

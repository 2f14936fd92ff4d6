#include "base/format.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dqe {
namespace {

TEST(Format, SignificantIsPrintfG) {
  EXPECT_EQ(format_significant(0.41234), "0.4123");
  EXPECT_EQ(format_significant(2e-5, 2), "2e-05");
  EXPECT_EQ(format_significant(1234.5678), "1235");
  EXPECT_EQ(format_significant(3.0), "3");
  EXPECT_EQ(format_significant(NAN), "nan");  // what fmt_double ("%.*g") gives, for logs
}

TEST(Format, NumberIsReadable) {
  EXPECT_EQ(format_number(3), "3");
  EXPECT_EQ(format_number(-0.0), "0");
  EXPECT_EQ(format_number(320), "320");
  EXPECT_EQ(format_number(0.150549958493592), "0.1505");
  EXPECT_EQ(format_number(3.125e-05), "3.125e-05");
  EXPECT_EQ(format_number(1234.5678), "1235");
  EXPECT_EQ(format_number(0.98514851, 3), "0.985");
  EXPECT_EQ(format_number(0.98514851, 0), "1");  // at least one digit
  EXPECT_EQ(format_number(NAN), "n/a");
  EXPECT_EQ(format_number(INFINITY), "n/a");
}

TEST(Format, FixedHasTheGivenDecimals) {
  EXPECT_EQ(format_fixed(0.43124), "0.4312");
  EXPECT_EQ(format_fixed(0.9), "0.9000");
  EXPECT_EQ(format_fixed(12.345678, 2), "12.35");
  EXPECT_EQ(format_fixed(-1.5, 0), "-2");
  EXPECT_EQ(format_fixed(NAN), "n/a");
  EXPECT_EQ(format_fixed(-INFINITY), "n/a");
}

TEST(Format, DurationRoundsToSecondsMinutesOrHours) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(12.4), "12s");
  EXPECT_EQ(format_duration(59.5), "1m00s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3599.4), "59m59s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  EXPECT_EQ(format_duration(100 * 3600 + 59), "100h00m");
  EXPECT_EQ(format_duration(-1), "n/a");
  EXPECT_EQ(format_duration(NAN), "n/a");
  EXPECT_EQ(format_duration(INFINITY), "n/a");
}

}  // namespace
}  // namespace dqe

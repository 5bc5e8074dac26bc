// The Prometheus exposition writer: exact text, escaping, special values,
// cumulative histogram buckets.
#include "server/http/metrics.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace nnlab::server {
namespace {

TEST(ExpositionWriterTest, FamiliesSamplesAndLabels) {
  ExpositionWriter w;
  w.Family("nnlab_jobs", "gauge", "Jobs by state.");
  w.Sample({{"state", "running"}}, 2);
  w.Sample({{"state", "queued"}}, 0);
  w.Family("nnlab_steps_total", "counter", "Steps.");
  w.Sample({{"job_id", "a"}, {"label", "x"}}, 1234567);
  w.Sample({}, 0.25);
  EXPECT_EQ(w.Take(),
            "# HELP nnlab_jobs Jobs by state.\n"
            "# TYPE nnlab_jobs gauge\n"
            "nnlab_jobs{state=\"running\"} 2\n"
            "nnlab_jobs{state=\"queued\"} 0\n"
            "# HELP nnlab_steps_total Steps.\n"
            "# TYPE nnlab_steps_total counter\n"
            "nnlab_steps_total{job_id=\"a\",label=\"x\"} 1234567\n"
            "nnlab_steps_total 0.25\n");
  EXPECT_EQ(w.Take(), "");  // Emptied by Take.
}

TEST(ExpositionWriterTest, EscapesLabelValuesAndHelp) {
  ExpositionWriter w;
  w.Family("m", "untyped", "a \\ b\nc \"q\"");
  w.Sample({{"label", "back\\slash \"quote\"\nnewline"}}, 1);
  EXPECT_EQ(w.Take(),
            "# HELP m a \\\\ b\\nc \"q\"\n"
            "# TYPE m untyped\n"
            "m{label=\"back\\\\slash \\\"quote\\\"\\nnewline\"} 1\n");
}

TEST(ExpositionWriterTest, Values) {
  EXPECT_EQ(ExpositionWriter::FormatValue(0), "0");
  EXPECT_EQ(ExpositionWriter::FormatValue(-3), "-3");
  EXPECT_EQ(ExpositionWriter::FormatValue(0.005), "0.005");
  EXPECT_EQ(ExpositionWriter::FormatValue(0.1), "0.1");
  EXPECT_EQ(ExpositionWriter::FormatValue(1e20), "1e+20");
  EXPECT_EQ(ExpositionWriter::FormatValue(1.0 / 3),
            "0.33333333333333331");  // 17 digits: 15 would not read back.
  EXPECT_EQ(
      ExpositionWriter::FormatValue(std::numeric_limits<double>::infinity()),
      "+Inf");
  EXPECT_EQ(
      ExpositionWriter::FormatValue(-std::numeric_limits<double>::infinity()),
      "-Inf");
  EXPECT_EQ(ExpositionWriter::FormatValue(std::nan("")), "NaN");
}

TEST(ExpositionWriterTest, HistogramBucketsAreCumulative) {
  Histogram h({0.1, 1});
  h.Observe(0.05);
  h.Observe(0.1);  // On a bound: counts in that bucket ("le").
  h.Observe(0.5);
  h.Observe(7);
  ExpositionWriter w;
  w.Family("d_seconds", "histogram", "Durations.");
  w.Histogram({{"method", "M"}}, h.Read());
  EXPECT_EQ(w.Take(),
            "# HELP d_seconds Durations.\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{method=\"M\",le=\"0.1\"} 2\n"
            "d_seconds_bucket{method=\"M\",le=\"1\"} 3\n"
            "d_seconds_bucket{method=\"M\",le=\"+Inf\"} 4\n"
            "d_seconds_sum{method=\"M\"} 7.65\n"
            "d_seconds_count{method=\"M\"} 4\n");
}

TEST(ExpositionWriterDeathTest, InvalidNamesAbort) {
  ExpositionWriter w;
  EXPECT_DEATH(w.Family("1bad", "gauge", ""), "NNLAB_CHECK");
  EXPECT_DEATH(w.Family("ok", "summary2", ""), "NNLAB_CHECK");
  w.Family("ok", "gauge", "");
  EXPECT_DEATH(w.Sample({{"bad:label", "v"}}, 1), "NNLAB_CHECK");
}

TEST(RpcStatsTest, CountsByMethodAndCode) {
  RpcStats s;
  s.Record("/p.S/A", 0, absl::Milliseconds(2));
  s.Record("/p.S/A", 0, absl::Milliseconds(3));
  s.Record("/p.S/A", 5, absl::Seconds(100));
  const auto r = s.Read();
  ASSERT_EQ(r.size(), 1u);
  const RpcStats::MethodStats& a = r.at("/p.S/A");
  EXPECT_EQ(a.by_code.at(0), 2u);
  EXPECT_EQ(a.by_code.at(5), 1u);
  EXPECT_EQ(a.latency.count, 3u);
  EXPECT_EQ(a.latency.counts.back(), 1u);  // 100 s: past the last bound.
  EXPECT_NEAR(a.latency.sum, 100.005, 1e-9);
}

}  // namespace
}  // namespace nnlab::server

// Per-timestep gradient norms in the CLI: the live view's sparkline and the
// plot-timesteps figure (SVG and PNG), on hand-made event histories.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/live.h"
#include "client/cli/plot.h"
#include "client/cli/timesteps.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnlab::cli {
namespace {

using ::testing::HasSubstr;

// A recurrent layer's stats whose norms vanish towards t = 0: ||dE/dh_t|| =
// 0.1 * decay^(T-1-t) at the 64 sampled steps of a T-step sequence (or all
// of them).
v1::LayerStats Recurrent(const std::string& name, const std::string& kind,
                         int steps, double decay) {
  v1::LayerStats l;
  l.set_name(name);
  l.set_kind(kind);
  l.set_grad_bias_norm(0.01);
  const int points = std::min(steps, 64);
  for (int i = 0; i < points; ++i) {
    const int t =
        points == steps ? i : int(std::lround(double(i) * (steps - 1) / 63.0));
    l.add_timestep_indices(t);
    l.add_timestep_grad_norms(0.1 * std::pow(decay, steps - 1 - t));
  }
  return l;
}

std::vector<v1::MetricEvent> Events(const std::string& kind, double decay) {
  std::vector<v1::MetricEvent> events;
  for (int s = 1; s <= 10; ++s) {
    v1::MetricEvent e;
    e.set_sequence(s - 1);
    e.set_step(s);
    e.set_phase(v1::PHASE_TRAIN);
    e.set_loss(1.0 / s);
    if (s % 3 == 1) {  // stats_every 3
      *e.add_layers() = Recurrent(kind + "0", kind, 100, decay);
      v1::LayerStats* d = e.add_layers();
      d->set_name("dense1");
      d->set_kind("dense");
      d->set_grad_bias_norm(0.1);
    }
    events.push_back(e);
  }
  return events;
}

TEST(TimestepLineTest, SparklineRisesTowardsTheLastStepOnALogScale) {
  const std::string line =
      TimestepLine(Recurrent("rnn0", "rnn", 100, 0.9), 64, false);
  EXPECT_THAT(line, HasSubstr("rnn0 |dE/dh_t| t=0..99 "));
  // 0.1 * 0.9^99 .. 0.1.
  EXPECT_THAT(line, HasSubstr(absl::StrFormat(" %.1e..%.1e",
                                              0.1 * std::pow(0.9, 99), 0.1)));
  const size_t start = line.find("t=0..99 ") + 8;
  const std::string cells = line.substr(start, 64);
  EXPECT_EQ(cells.front(), ' ');  // The smallest norm: the lowest level.
  EXPECT_EQ(cells.back(), '@');   // The largest: the highest.
  const std::string levels = " .:-=+*#%@";
  for (size_t i = 1; i < cells.size(); ++i) {
    EXPECT_GE(levels.find(cells[i]), levels.find(cells[i - 1])) << line;
  }
  // Fewer cells than points: resampled, still first and last.
  const std::string narrow =
      TimestepLine(Recurrent("rnn0", "rnn", 100, 0.9), 10, false);
  EXPECT_THAT(narrow, HasSubstr("t=0..99  .:-=+*#%@ "));
  EXPECT_EQ(TimestepLine(v1::LayerStats(), 40, false), "");
}

TEST(TimestepLineTest, LiveViewShowsOneLinePerRecurrentLayer) {
  v1::Job job;
  job.set_job_id("j1");
  job.set_total_steps(10);
  LiveViewOptions o;
  o.columns = 100;
  o.unicode = false;
  const std::string frame = RenderLiveFrame(job, Events("lstm", 0.95), o);
  EXPECT_THAT(frame, HasSubstr("  lstm0 |dE/dh_t| t=0..99 "));
  EXPECT_FALSE(absl::StrContains(frame, "dense1 |dE/dh_t|"));
  for (absl::string_view line : absl::StrSplit(frame, '\n')) {
    EXPECT_LT(line.size(), 100u) << line;
  }
  o.unicode = true;
  EXPECT_THAT(RenderLiveFrame(job, Events("lstm", 0.95), o), HasSubstr("█"));
}

std::vector<TimestepHistory> RnnAndLstm() {
  std::vector<TimestepHistory> jobs(2);
  jobs[0].label = "job r";
  jobs[1].label = "job l";
  for (const auto& e : Events("rnn", 0.8)) jobs[0].Add(e);
  for (const auto& e : Events("lstm", 0.99)) jobs[1].Add(e);
  return jobs;
}

TEST(TimestepPlotTest, HistoryKeepsEveryStatsStepOfRecurrentLayersOnly) {
  std::vector<TimestepHistory> jobs = RnnAndLstm();
  ASSERT_EQ(jobs[0].layers.size(), 1u);
  EXPECT_EQ(jobs[0].layers[0].name, "rnn0");
  ASSERT_EQ(jobs[0].layers[0].steps.size(), 4u);  // Steps 1, 4, 7, 10.
  EXPECT_EQ(jobs[0].layers[0].steps[3].first, 10);
  const Series& s = jobs[0].layers[0].steps[0].second;
  ASSERT_EQ(s.size(), 64u);
  EXPECT_EQ(s.front().first, 0);
  EXPECT_EQ(s.back().first, 99);
  EXPECT_DOUBLE_EQ(s.back().second, 0.1);
}

TEST(TimestepPlotTest, SvgHasAPanelPerJobWithNormAgainstT) {
  std::vector<PlotPanel> panels = TimestepPanels(RnnAndLstm());
  ASSERT_EQ(panels.size(), 2u);
  EXPECT_EQ(panels[0].x_label, "t");
  EXPECT_TRUE(panels[0].log_y);
  ASSERT_EQ(panels[0].curves.size(), 4u);
  EXPECT_EQ(panels[0].curves[0].first, "step 1");
  EXPECT_EQ(panels[0].curves[3].first, "step 10");
  const std::string svg = RenderPanelsSvg("rnn vs lstm", panels);
  EXPECT_THAT(svg, HasSubstr("job r rnn0 (rnn)"));
  EXPECT_THAT(svg, HasSubstr("job l lstm0 (lstm)"));
  EXPECT_THAT(svg, HasSubstr(">t</text>"));
  EXPECT_THAT(svg, HasSubstr(">step 10</text>"));
  // The RNN's norms span 0.1 * 0.8^99 (about 1e-11) .. 0.1: log ticks.
  EXPECT_THAT(svg, HasSubstr(">1e-11</text>"));
  EXPECT_THAT(svg, HasSubstr(">1e-1</text>"));
  // Eight curves (4 per panel) plus axes and grid lines.
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1)) {
    ++polylines;
  }
  EXPECT_GT(polylines, 8u);
}

TEST(TimestepPlotTest, PngIsWrittenAndBadInputIsRejected) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/timesteps_test.png");
  ASSERT_TRUE(WritePanels("t", TimestepPanels(RnnAndLstm()), path).ok());
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&image, path.c_str()))
      << image.message;
  EXPECT_EQ(image.width, 1200u);
  EXPECT_GT(image.height, 600u);  // Two panels.
  png_image_free(&image);
  std::remove(path.c_str());
  EXPECT_EQ(WritePanels("t", {}, path).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(WritePanels("t", TimestepPanels(RnnAndLstm()), "/tmp/x.jpg").code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nnlab::cli

// The plot writer (SVG and PNG read back with libpng) and the live view's
// frames, on hand-made event histories.
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cli/live.h"
#include "client/cli/plot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/cli_test_util.h"

namespace nnlab::cli {
namespace {

using ::testing::HasSubstr;

// A 3-layer history: the first layer learns 100x slower than the last
// (the vanishing-gradient picture), loss falls, accuracy rises.
std::vector<v1::MetricEvent> Events(int steps) {
  std::vector<v1::MetricEvent> events;
  int64_t seq = 0;
  for (int s = 1; s <= steps; ++s) {
    v1::MetricEvent e;
    e.set_sequence(seq++);
    e.set_step(s);
    e.set_phase(v1::PHASE_TRAIN);
    e.set_loss(2.3 * std::exp(-s / 50.0));
    e.set_accuracy(1.0 - 0.9 * std::exp(-s / 50.0));
    e.set_learning_rate(0.1);
    e.set_samples_per_sec(1000);
    const char* names[] = {"dense0", "dense2", "dense4"};
    const double speed[] = {1e-4, 1e-3, 1e-2};
    for (int l = 0; l < 3; ++l) {
      v1::LayerStats* ls = e.add_layers();
      ls->set_name(names[l]);
      ls->set_kind("dense");
      ls->set_grad_bias_norm(speed[l]);
      ls->set_saturated_fraction(0.25 * l);
    }
    events.push_back(e);
    if (s % 50 == 0) {
      v1::MetricEvent ev;
      ev.set_sequence(seq++);
      ev.set_step(s);
      ev.set_phase(v1::PHASE_EVAL);
      ev.set_loss(e.loss() * 1.1);
      ev.set_accuracy(e.accuracy() - 0.01);
      events.push_back(ev);
    }
  }
  return events;
}

TrainingHistory History(int steps) {
  TrainingHistory h;
  h.title = "test run";
  for (const auto& e : Events(steps)) h.Add(e);
  return h;
}

TEST(PlotTest, HistoryCollectsSeries) {
  TrainingHistory h = History(200);
  EXPECT_EQ(h.train_loss.size(), 200u);
  EXPECT_EQ(h.train_accuracy.size(), 200u);
  EXPECT_EQ(h.eval_accuracy.size(), 4u);
  ASSERT_EQ(h.learning_speed.size(), 3u);
  EXPECT_EQ(h.learning_speed[0].first, "dense0");
  EXPECT_EQ(h.learning_speed[2].first, "dense4");
  EXPECT_DOUBLE_EQ(h.learning_speed[1].second[7].second, 1e-3);

  // Accuracy -1 (not a classifier) and non-finite losses are left out.
  v1::MetricEvent e;
  e.set_phase(v1::PHASE_TRAIN);
  e.set_step(201);
  e.set_loss(NAN);
  e.set_accuracy(-1);
  h.Add(e);
  EXPECT_EQ(h.train_loss.size(), 200u);
  EXPECT_EQ(h.train_accuracy.size(), 200u);
}

TEST(PlotTest, SvgHasPanelsCurvesAndLogTicks) {
  std::string svg = RenderSvg(History(200));
  EXPECT_TRUE(absl::StartsWith(svg, "<?xml"));
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(absl::EndsWith(svg, "</svg>\n"));
  EXPECT_THAT(svg, HasSubstr(">loss</text>"));
  EXPECT_THAT(svg, HasSubstr(">accuracy</text>"));
  EXPECT_THAT(svg, HasSubstr("learning speed"));
  for (const char* layer : {">dense0<", ">dense2<", ">dense4<"}) {
    EXPECT_THAT(svg, HasSubstr(layer));
  }
  // The learning speeds span 1e-4 .. 1e-2: the log axis has those decades.
  EXPECT_THAT(svg, HasSubstr(">1e-4</text>"));
  EXPECT_THAT(svg, HasSubstr(">1e-2</text>"));
  // Curves are the polylines of 3 or more points (grid lines and legend
  // swatches have 2): raw, smoothed and test loss, smoothed and test
  // accuracy, and one per layer.
  int curves = 0;
  for (absl::string_view line : absl::StrSplit(svg, '\n')) {
    if (!absl::StartsWith(line, "<polyline")) continue;
    size_t commas = std::count(line.begin(), line.end(), ',');
    if (commas >= 3) ++curves;
  }
  EXPECT_EQ(curves, 3 + 2 + 3);
}

TEST(PlotTest, EmptyHistoryAndBadExtensionAreRejected) {
  TrainingHistory empty;
  EXPECT_EQ(WritePlot(empty, "/tmp/x.svg").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(WritePlot(History(10), "/tmp/x.jpg").code(),
            absl::StatusCode::kInvalidArgument);
}

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

Image ReadPng(const std::string& path) {
  Image img;
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) return img;
  image.format = PNG_FORMAT_RGB;
  img.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, img.rgb.data(), 0, nullptr)) {
    img.rgb.clear();
    return img;
  }
  img.width = static_cast<int>(image.width);
  img.height = static_cast<int>(image.height);
  return img;
}

TEST(PlotTest, PngIsAValidImageWithTheCurvesInIt) {
  const std::string path = ::testing::TempDir() + "/plot_test.png";
  ASSERT_TRUE(WritePlot(History(200), path).ok());
  std::string bytes = nnlab::testing::ReadAll(path);
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");

  Image img = ReadPng(path);
  ASSERT_GT(img.width, 0);
  EXPECT_EQ(img.width, 1200);
  EXPECT_GT(img.height, 900);  // three panels
  // Mostly white background, with the palette's first colour (the loss
  // curve, Tableau blue 31,119,180) drawn somewhere.
  size_t white = 0, blue = 0;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) {
    const uint8_t r = img.rgb[i], g = img.rgb[i + 1], b = img.rgb[i + 2];
    white += (r == 255 && g == 255 && b == 255);
    blue += (r == 31 && g == 119 && b == 180);
  }
  const size_t pixels = img.rgb.size() / 3;
  EXPECT_GT(white, pixels / 2);
  EXPECT_GT(blue, 500u);
  std::remove(path.c_str());
}

// An overlay of `n` trials whose labels are `label_chars` long.
std::vector<OverlayTrial> Trials(int n, size_t label_chars) {
  std::vector<OverlayTrial> out;
  for (int i = 0; i < n; ++i) {
    OverlayTrial t;
    std::string label = absl::StrCat("job.optimizer.learning_rate=0.", i, " ");
    while (label.size() < label_chars) label += 'x';
    t.label = label.substr(0, label_chars);
    t.history = History(100);
    out.push_back(std::move(t));
  }
  return out;
}

struct SvgText {
  double x = 0, y = 0, advance = 0;
  std::string anchor, text;
};

// Every <text> of an SVG written by the plot writer.
std::vector<SvgText> Texts(const std::string& svg) {
  std::vector<SvgText> out;
  for (absl::string_view line : absl::StrSplit(svg, '\n')) {
    if (!absl::StartsWith(line, "<text ")) continue;
    SvgText t;
    char anchor[16] = {};
    double size = 0;
    int end = 0;
    const std::string l(line);
    if (std::sscanf(l.c_str(),
                    "<text x=\"%lf\" y=\"%lf\" fill=\"%*[^\"]\" "
                    "font-size=\"%lf\" text-anchor=\"%15[a-z]\">%n",
                    &t.x, &t.y, &size, anchor, &end) < 4) {
      continue;
    }
    t.advance = size * 0.6;
    t.anchor = anchor;
    t.text = l.substr(end, l.size() - end - 7);  // Less "</text>".
    out.push_back(t);
  }
  return out;
}

int Height(const std::string& svg) {
  int w = 0, h = 0;
  const size_t at = svg.find("<svg ");
  EXPECT_NE(at, std::string::npos);
  std::sscanf(svg.c_str() + svg.find("width=", at),
              "width=\"%d\" height=\"%d\"", &w, &h);
  return h;
}

// Long legends wrap into columns below each panel's title and stay inside
// the figure; the panels grow to hold them.
TEST(PlotTest, LongOverlayLegendsWrapInsideTheFigure) {
  const std::string svg_path = ::testing::TempDir() + "/overlay_test.svg";
  // Two trials with short labels: one row beside the title, as before.
  ASSERT_TRUE(WriteOverlayPlot("few", Trials(2, 30), "dense0", svg_path).ok());
  const std::string few = nnlab::testing::ReadAll(svg_path);
  // Eight 36-character labels: two columns of four rows in each panel.
  ASSERT_TRUE(
      WriteOverlayPlot("eight", Trials(8, 36), "dense0", svg_path).ok());
  const std::string eight = nnlab::testing::ReadAll(svg_path);
  // 40 labels of 150 characters: cut to the width, at most 12 rows.
  ASSERT_TRUE(
      WriteOverlayPlot("many", Trials(40, 150), "dense0", svg_path).ok());
  const std::string many = nnlab::testing::ReadAll(svg_path);

  EXPECT_EQ(Height(few), 60 + 3 * 330 + 20);
  EXPECT_EQ(Height(eight), 60 + 3 * (330 + 3 * 24) + 20);
  EXPECT_EQ(Height(many), 60 + 3 * (330 + 11 * 24) + 20);
  for (const std::string* svg : {&few, &eight, &many}) {
    int width = 0, height = 0;
    std::sscanf(svg->c_str() + svg->find("width="),
                "width=\"%d\" height=\"%d\"", &width, &height);
    for (const SvgText& t : Texts(*svg)) {
      const double w = t.advance * static_cast<double>(t.text.size());
      const double left = t.anchor == "start"    ? t.x
                          : t.anchor == "middle" ? t.x - w / 2
                                                 : t.x - w;
      EXPECT_GE(left, 0) << t.text;
      EXPECT_LE(left + w, width) << t.text;
      if (absl::StartsWith(t.text, "job.")) {  // Legend: within the plot.
        EXPECT_GE(left, 130) << t.text;
        EXPECT_LE(left + w, width - 40 + 0.01) << t.text;
      }
      EXPECT_LE(t.y, height) << t.text;
    }
  }
  auto legend = [](const std::string& svg) {
    std::vector<SvgText> out;
    for (const SvgText& t : Texts(svg)) {
      if (absl::StartsWith(t.text, "job.") || absl::StrContains(t.text, "more"))
        out.push_back(t);
    }
    return out;
  };
  // Every label in each of the three panels, whole.
  std::vector<SvgText> l = legend(eight);
  ASSERT_EQ(l.size(), 3u * 8);
  std::map<double, int> rows;
  for (const SvgText& t : l) {
    EXPECT_EQ(t.text.size(), 36u) << t.text;
    ++rows[t.y];
  }
  EXPECT_EQ(rows.size(), 3u * 4);  // Four rows per panel ...
  for (const auto& [y, n] : rows) EXPECT_EQ(n, 2) << y;  // ... of two.
  // 11 rows of one label cut in the middle (the width of the plot: 83
  // characters), then how many are not shown.
  l = legend(many);
  ASSERT_EQ(l.size(), 3u * 12);
  for (int i = 0; i < 11; ++i) {
    EXPECT_TRUE(absl::StrContains(l[i].text, "...")) << l[i].text;
    EXPECT_EQ(l[i].text.size(), 83u) << l[i].text;
    EXPECT_TRUE(absl::EndsWith(l[i].text, "xxx")) << l[i].text;
    EXPECT_TRUE(absl::StartsWith(
        l[i].text, absl::StrCat("job.optimizer.learning_rate=0.", i, " ")))
        << l[i].text;
  }
  EXPECT_EQ(l[11].text, "(29 more not shown)");

  // PNG: nothing drawn in the side margins (the last x tick label, centred
  // on the plot's right edge, ends at 1178), where a legend running off
  // the plot would land.
  const std::string png_path = ::testing::TempDir() + "/overlay_test.png";
  ASSERT_TRUE(
      WriteOverlayPlot("many", Trials(40, 150), "dense0", png_path).ok());
  Image img = ReadPng(png_path);
  ASSERT_EQ(img.width, 1200);
  EXPECT_EQ(img.height, Height(many));
  int ink = 0, legend_ink = 0;
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* p = &img.rgb[(static_cast<size_t>(y) * img.width + x) * 3];
      const bool white = p[0] == 255 && p[1] == 255 && p[2] == 255;
      if (x < 10 || x >= 1182) ink += !white;
      // The first panel's legend rows: text from x = 160 on.
      if (y > 60 + 62 - 16 && y < 60 + 62 + 11 * 24 && x > 150) {
        legend_ink += !white;
      }
    }
  }
  EXPECT_EQ(ink, 0);
  EXPECT_GT(legend_ink, 11 * 100);
  std::remove(svg_path.c_str());
  std::remove(png_path.c_str());
}

TEST(PlotTest, GrayPngRoundTrips) {
  const std::string path = ::testing::TempDir() + "/gray_test.png";
  std::vector<uint8_t> px(7 * 5);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(WriteGrayPng(path, 7, 5, px).ok());
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&image, path.c_str()));
  EXPECT_EQ(image.width, 7u);
  EXPECT_EQ(image.height, 5u);
  image.format = PNG_FORMAT_GRAY;
  std::vector<uint8_t> back(PNG_IMAGE_SIZE(image));
  ASSERT_TRUE(png_image_finish_read(&image, nullptr, back.data(), 0, nullptr));
  EXPECT_EQ(back, px);
  EXPECT_FALSE(WriteGrayPng(path, 7, 4, px).ok());
  std::remove(path.c_str());
}

// Bar length in cells of a live-view layer line (ASCII mode).
int BarCells(const std::string& frame, const std::string& layer) {
  for (absl::string_view line : absl::StrSplit(frame, '\n')) {
    if (!absl::StartsWith(line, "  " + layer + " ")) continue;
    return static_cast<int>(std::count(line.begin(), line.end(), '#'));
  }
  return -1;
}

TEST(LiveViewTest, FrameShowsProgressMetricsAndLogScaleBars) {
  v1::Job job;
  job.set_job_id("j1");
  job.mutable_spec()->set_model_id("m1");
  job.mutable_spec()->set_dataset("mnist");
  job.mutable_spec()->set_epochs(2);
  job.mutable_spec()->set_batch_size(10);
  job.set_total_steps(400);
  job.set_state(v1::JOB_STATE_RUNNING);
  LiveViewOptions o;
  o.columns = 100;
  o.unicode = false;
  std::string frame = RenderLiveFrame(job, Events(200), o);
  EXPECT_THAT(frame, HasSubstr("job j1  model m1  dataset mnist  RUNNING"));
  EXPECT_THAT(frame, HasSubstr("step 200/400"));
  EXPECT_THAT(frame, HasSubstr(" 50%"));
  EXPECT_THAT(frame, HasSubstr("1000 samples/s"));
  // 200 steps left at 100 steps/s (1000 samples/s, batch 10).
  EXPECT_THAT(frame, HasSubstr("ETA 0:02"));
  EXPECT_THAT(frame, HasSubstr("test   loss"));
  EXPECT_THAT(frame,
              HasSubstr("learning speed ||delta^l|| per layer, log scale"));
  EXPECT_FALSE(absl::StrContains(frame, "\x1b"));
  // Log scale 1e-4 .. 1e-2: each decade adds the same bar length.
  const int b0 = BarCells(frame, "dense0"), b2 = BarCells(frame, "dense2"),
            b4 = BarCells(frame, "dense4");
  ASSERT_GE(b0, 0);
  EXPECT_LT(b0, b2);
  EXPECT_LT(b2, b4);
  EXPECT_NEAR(b2 - b0, b4 - b2, 1);
  for (absl::string_view line : absl::StrSplit(frame, '\n')) {
    EXPECT_LT(line.size(), 100u) << line;
  }
  // Saturated fractions: "sat/dead" unless the model says which.
  EXPECT_THAT(frame, HasSubstr("sat/dead  25%"));
  // The layers as a server too old to send traits describes them: no
  // activations known, so the labels stay "sat/dead".
  v1::Model model;
  for (const char* kind : {"dense", "relu", "dense", "sigmoid", "dense"}) {
    v1::LayerInfo* l = model.add_layers();
    l->set_name(absl::StrCat(kind, model.layers_size() - 1));
    l->set_kind(kind);
    if (std::string(kind) == "dense") l->add_params()->set_name("w");
  }
  EXPECT_TRUE(ActivationsAfter(model).empty());
  o.activation_after = ActivationsAfter(model);
  EXPECT_THAT(RenderLiveFrame(job, Events(200), o), HasSubstr("sat/dead  25%"));
  // With the traits the server sends, the labels follow them, not the kind
  // names.
  model.mutable_layers(1)->set_is_activation(true);
  model.mutable_layers(1)->set_saturation(v1::SATURATION_DEAD);
  model.mutable_layers(3)->set_is_activation(true);
  model.mutable_layers(3)->set_saturation(v1::SATURATION_SATURATED);
  o.activation_after = ActivationsAfter(model);
  EXPECT_EQ(o.activation_after, (std::map<std::string, v1::SaturationKind>{
                                    {"dense0", v1::SATURATION_DEAD},
                                    {"dense2", v1::SATURATION_SATURATED}}));
  frame = RenderLiveFrame(job, Events(200), o);
  EXPECT_THAT(frame, HasSubstr("dead   0%"));  // dense0
  EXPECT_THAT(frame, HasSubstr("sat  25%"));   // dense2
  // An activation of no stated saturation kind reads "sat".
  model.mutable_layers(1)->clear_saturation();
  o.activation_after = ActivationsAfter(model);
  EXPECT_EQ(o.activation_after.at("dense0"), v1::SATURATION_UNSPECIFIED);
  frame = RenderLiveFrame(job, Events(200), o);
  EXPECT_THAT(frame, HasSubstr("sat   0%"));  // dense0
  EXPECT_FALSE(absl::StrContains(frame, "dead   0%"));
}

TEST(LiveViewTest, PlainLinesCarryTheNumbers) {
  std::vector<v1::MetricEvent> events = Events(50);
  std::string line = PlainLine(events[0]);
  EXPECT_THAT(line, HasSubstr("step 1 epoch 0 loss 2.254"));
  EXPECT_THAT(line, HasSubstr("dense0=1.0e-04"));
  v1::MetricEvent state;
  state.set_phase(v1::PHASE_STATE);
  state.set_step(50);
  state.set_job_state(v1::JOB_STATE_FAILED);
  state.set_message("non-finite gradient in dense0");
  EXPECT_EQ(PlainLine(state),
            "state FAILED at step 50: non-finite gradient in dense0");
}

// The plain printer's lines for `events` arriving `dt` seconds apart.
std::vector<std::string> PlainOutput(const std::vector<v1::MetricEvent>& events,
                                     double min_step_seconds, double dt) {
  char* buf = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&buf, &size);
  double now = 0;
  PlainOptions o;
  o.min_step_seconds = min_step_seconds;
  o.clock = [&now] { return now; };
  auto printer = MakePlainPrinter(out, o);
  v1::Job job;
  job.set_job_id("j");
  job.set_state(v1::JOB_STATE_COMPLETED);
  job.set_step(events.back().step());
  printer->Begin(job);
  for (const auto& e : events) {
    printer->OnEvent(e);
    now += dt;
  }
  printer->End(job);
  std::fclose(out);
  std::vector<std::string> lines =
      absl::StrSplit(std::string(buf, size), '\n', absl::SkipEmpty());
  free(buf);
  return lines;
}

TEST(LiveViewTest, PlainOutputIsRateLimited) {
  // 200 steps (4 evaluations) arriving 10 ms apart: 2 s of events.
  const std::vector<v1::MetricEvent> events = Events(200);
  const std::vector<std::string> all = PlainOutput(events, 0, 0.01);
  EXPECT_EQ(all.size(), 1 + 200 + 4 + 1u);  // Begin, steps, evals, End.
  const std::vector<std::string> limited = PlainOutput(events, 1.0, 0.01);
  int steps = 0, evals = 0;
  for (const std::string& l : limited) {
    if (absl::StartsWith(l, "step ")) ++steps;
    if (absl::StartsWith(l, "eval ")) ++evals;
  }
  // One step line a second (at t = 0, 1 and ~2 s) plus the last step.
  EXPECT_GE(steps, 3);
  EXPECT_LE(steps, 4);
  EXPECT_EQ(evals, 4);  // Never dropped.
  EXPECT_THAT(limited[limited.size() - 2], HasSubstr("step 200 "));
  EXPECT_THAT(limited.back(), HasSubstr("COMPLETED at step 200"));
}

TEST(LiveViewTest, GanShowsBothLossesAndDiscriminatorOutputs) {
  v1::MetricEvent d, g;
  d.set_phase(v1::PHASE_GAN_D);
  d.set_step(30);
  d.set_epoch(1);
  d.set_loss(1.25);
  d.set_d_real(0.625);
  d.set_d_fake(0.375);
  g.set_phase(v1::PHASE_GAN_G);
  g.set_step(30);
  g.set_epoch(1);
  g.set_loss(0.75);
  EXPECT_EQ(PlainLine(d),
            "step 30 epoch 1 D loss 1.25 D(x) 0.625 D(G(z)) 0.375");
  EXPECT_EQ(PlainLine(g), "step 30 epoch 1 G loss 0.75");
  v1::Job job;
  job.set_job_id("g1");
  job.set_total_steps(60);
  job.set_state(v1::JOB_STATE_RUNNING);
  LiveViewOptions o;
  o.columns = 100;
  o.unicode = false;
  EXPECT_THAT(RenderLiveFrame(job, {d, g}, o),
              HasSubstr("GAN    D loss 1.25  G loss 0.75  D(x) 0.625  "
                        "D(G(z)) 0.375  (step 30)"));
}

}  // namespace
}  // namespace nnlab::cli

// Training plots: loss and accuracy curves and the per-layer learning
// speed ||delta^l|| on a log scale over training (the lecture's figure),
// from a job's metric events, written as SVG or PNG (libpng).
#ifndef NNLAB_CLIENT_CLI_PLOT_H_
#define NNLAB_CLIENT_CLI_PLOT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "nnlab/v1/training.pb.h"

namespace nnlab::cli {

// (step, value) pairs in arrival order.
using Series = std::vector<std::pair<int64_t, double>>;

// What a plot shows, accumulated from a job's events.
struct TrainingHistory {
  std::string title;
  Series train_loss, train_accuracy;  // PHASE_TRAIN
  Series eval_loss, eval_accuracy;    // PHASE_EVAL
  Series d_loss, g_loss;              // PHASE_GAN_D / PHASE_GAN_G
  // grad_bias_norm per parameterised layer, in first-seen layer order.
  std::vector<std::pair<std::string, Series>> learning_speed;

  // Adds one event (non-finite values and accuracy -1 are left out).
  void Add(const v1::MetricEvent& event);
  bool empty() const;
};

// The figure as an SVG document.
std::string RenderSvg(const TrainingHistory& history);

// SVG for *.svg, PNG for *.png. InvalidArgument for another extension,
// FailedPrecondition when there is nothing to plot, Internal if the file
// cannot be written.
absl::Status WritePlot(const TrainingHistory& history, const std::string& path);

// A panel of a free-form figure: labelled curves of (x, y) points, x an
// integer (a step, a time step t) from 0.
struct PlotPanel {
  std::string title;
  std::string x_label = "step";
  bool log_y = false;
  std::vector<std::pair<std::string, Series>> curves;
};

// A figure of `panels` stacked under `title`, as SVG.
std::string RenderPanelsSvg(const std::string& title,
                            const std::vector<PlotPanel>& panels);
// The same as SVG (*.svg) or PNG (*.png); errors as WritePlot's.
absl::Status WritePanels(const std::string& title,
                         const std::vector<PlotPanel>& panels,
                         const std::string& path);
// One curve set of an overlay: the legend label and the trial's history.
struct OverlayTrial {
  std::string label;
  TrainingHistory history;
};

// Several jobs on one figure: training loss (smoothed), test accuracy and
// the learning speed of the layer named `layer` (that panel is left out
// when `layer` is empty or no trial has it), one curve per trial. Same file
// types and errors as WritePlot.
absl::Status WriteOverlayPlot(const std::string& title,
                              const std::vector<OverlayTrial>& trials,
                              const std::string& layer,
                              const std::string& path);

// Writes `pixels` (8-bit grey, row-major height x width) as a PNG file.
absl::Status WriteGrayPng(const std::string& path, int width, int height,
                          const std::vector<uint8_t>& pixels);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_PLOT_H_

// Per-time-step gradient norms ||dE/dh_t|| of recurrent layers
// (LayerStats.timestep_grad_norms): the live view's one-line sparkline and
// the `nnlab plot-timesteps` figure (norm against t, log scale; one panel
// per recurrent layer of each job, so an RNN and an LSTM sit side by side).
#ifndef NNLAB_CLIENT_CLI_TIMESTEPS_H_
#define NNLAB_CLIENT_CLI_TIMESTEPS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/plot.h"
#include "nnlab/v1/training.pb.h"

namespace nnlab::cli {

// "rnn0 |dE/dh_t| t=0..99 <sparkline> 1.2e-06..3.4e-02": the norms on a
// log scale between their smallest positive and largest value, one cell per
// sampled point (resampled evenly to at most `width` cells). ASCII levels
// " .:-=+*#%@" unless `unicode` ("▁".."█"). Empty if `l` has no norms.
std::string TimestepLine(const v1::LayerStats& l, int width, bool unicode);

// One job's per-timestep norms, folded from its events.
struct TimestepHistory {
  struct Layer {
    std::string name, kind;
    // (optimizer step, ||dE/dh_t|| against t) in arrival order.
    std::vector<std::pair<int64_t, Series>> steps;
  };
  std::string label;  // Names the job in panel titles, e.g. "job j1 (rnn)".
  std::vector<Layer> layers;

  // Adds the recurrent layers' norms of a PHASE_TRAIN event.
  void Add(const v1::MetricEvent& event);
};

// The panels of the figure: for each job and recurrent layer, the norms at
// (up to) four of its recorded steps, first and last included, log y.
std::vector<PlotPanel> TimestepPanels(const std::vector<TimestepHistory>& jobs);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_TIMESTEPS_H_

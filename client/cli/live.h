// How `nnlab train --watch` and `nnlab watch` show a job's events:
//  - LiveView (stdout is a terminal): one screen redrawn in place with ANSI
//    escapes: a progress bar (epoch, step, samples/s, ETA), loss and
//    accuracy, the test-set evaluation, the GAN's D and G losses, and a
//    per-layer bar chart of the learning speed ||delta^l|| on a log scale.
//  - PlainPrinter: one line per event, no escape codes (pipes, logs).
//  - JsonPrinter: one protobuf-JSON object per event and line (scripts).
//
// Thread safety: none; one printer per watch, called from one thread.
#ifndef NNLAB_CLIENT_CLI_LIVE_H_
#define NNLAB_CLIENT_CLI_LIVE_H_

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nnlab/v1/model.pb.h"
#include "nnlab/v1/training.pb.h"

namespace nnlab::cli {

class EventPrinter {
 public:
  virtual ~EventPrinter() = default;
  // Before the first event: the job as StartJob/GetJob returned it.
  virtual void Begin(const v1::Job& job) = 0;
  virtual void OnEvent(const v1::MetricEvent& event) = 0;
  // After the stream ended: the job's final state (final evaluation).
  virtual void End(const v1::Job& job) = 0;
};

struct LiveViewOptions {
  // Terminal columns (the view fits in them).
  int columns = 80;
  // Unicode block characters for bars; ASCII '#' otherwise.
  bool unicode = true;
  // Minimum time between redraws; evaluations and state changes always
  // redraw.
  double min_redraw_seconds = 0.1;
  // Parameterised layer -> what the activation that follows it counts
  // (dead units after a ReLU, saturated ones after a sigmoid), to label its
  // saturated_fraction; "sat/dead" for a layer not in the map.
  std::map<std::string, v1::SaturationKind> activation_after;
};

// activation_after for a model: each layer with parameters mapped to the
// saturation kind of the first activation after it (before the next layer
// with parameters). Uses the traits the server sends with each layer
// (LayerInfo.is_activation, .saturation); a server too old to send them
// marks no layer an activation, so the map is empty and the view says
// "sat/dead", as it does when the model is unknown.
std::map<std::string, v1::SaturationKind> ActivationsAfter(
    const v1::Model& model);

// `out` must outlive the printer.
std::unique_ptr<EventPrinter> MakeLiveView(FILE* out, LiveViewOptions options);
// Plain lines; with min_step_seconds > 0, a step's line (training, GAN D or
// G) is printed only if at least that long passed since the last one
// printed (evaluations, state changes and the last step before the end are
// always printed). `clock` (seconds, monotonic) defaults to the real one.
struct PlainOptions {
  double min_step_seconds = 0;
  std::function<double()> clock;
};
std::unique_ptr<EventPrinter> MakePlainPrinter(FILE* out,
                                               PlainOptions options = {});
std::unique_ptr<EventPrinter> MakeJsonPrinter(FILE* out);

// The live view's screen for `job` after `events` (no escape codes), as it
// would be drawn; for tests and documentation.
std::string RenderLiveFrame(const v1::Job& job,
                            const std::vector<v1::MetricEvent>& events,
                            LiveViewOptions options);

// One plain line (no newline) describing `event`.
std::string PlainLine(const v1::MetricEvent& event);

// Short forms used in listings: "RUNNING", "COMPLETED", ...
std::string JobStateName(v1::JobState state);
std::string FormatDuration(double seconds);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_LIVE_H_

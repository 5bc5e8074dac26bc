// nnlab plot: a job's loss, accuracy and per-layer learning speed as SVG
// or PNG.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cli/common.h"
#include "client/cli/plot.h"

namespace nnlab::cli {
namespace {

// Events of a job's history, read up to the step it had reached when the
// plot was asked for (a running job keeps streaming; the plot stops there).
int RunPlot(const Globals& g, const std::string& job_id,
            const std::string& out) {
  if (!absl::EndsWithIgnoreCase(out, ".svg") &&
      !absl::EndsWithIgnoreCase(out, ".png")) {
    return Usage(absl::StrCat("--out ", out,
                              ": the file name must end in .svg or .png"));
  }
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto job = (*client)->GetJob(job_id);
  if (!job.ok()) return Fail(job.status());
  const bool ended = job->state() == v1::JOB_STATE_COMPLETED ||
                     job->state() == v1::JOB_STATE_CANCELLED ||
                     job->state() == v1::JOB_STATE_FAILED;
  const int64_t until = job->step();
  TrainingHistory history;
  history.title = absl::StrCat("job ", job_id, ": ", job->spec().model_id(),
                               " on ", job->spec().dataset());
  v1::StreamMetricsRequest req;
  req.set_job_id(job_id);
  absl::Status s = (*client)->WatchMetrics(req, [&](const v1::MetricEvent& e) {
    history.Add(e);
    return ended || e.step() < until || e.phase() != v1::PHASE_TRAIN;
  });
  if (!s.ok()) return Fail(s);
  s = WritePlot(history, out);
  if (!s.ok()) return Fail(s);
  if (!g.json) {
    std::printf("wrote %s (%zu steps, %zu layers)\n", out.c_str(),
                history.train_loss.size() + history.d_loss.size(),
                history.learning_speed.size());
  }
  return kExitOk;
}

}  // namespace

void AddPlotCommand(CLI::App& app, Cli& cli) {
  struct PlotFlags {
    std::string job_id, out;
    std::vector<std::string> more;  // Overlay: further jobs.
    std::string layer;
  };
  auto f = std::make_shared<PlotFlags>();
  CLI::App* plot = JobCommand(
      &app, "plot",
      "Plot loss, accuracy and per-layer learning speed of a job (SVG or PNG)",
      &f->job_id);
  plot->add_option("--out", f->out, "Output file, .svg or .png")->required();
  plot->add_option("--and", f->more,
                   "Overlay: further jobs drawn on the same figure (JOB may "
                   "also be a sweep id: all its trials)");
  plot->add_option("--layer", f->layer,
                   "Overlay: the layer whose learning speed is drawn");
  plot->callback([&cli, f] {
    cli.run = [&g = cli.globals, f] {
      // Sweep ids start with "s-"; a sweep is always an overlay.
      if (!f->more.empty() || !f->layer.empty() ||
          absl::StartsWith(f->job_id, "s-")) {
        std::vector<std::string> ids = {f->job_id};
        ids.insert(ids.end(), f->more.begin(), f->more.end());
        return RunOverlayPlot(g, ids, f->layer, f->out);
      }
      return RunPlot(g, f->job_id, f->out);
    };
  });
}

}  // namespace nnlab::cli

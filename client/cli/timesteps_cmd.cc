// nnlab plot-timesteps JOB [JOB...]: ||dE/dh_t|| against t for the recurrent
// layers of one or more jobs (an RNN and an LSTM side by side), SVG or PNG.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/common.h"
#include "client/cli/timesteps.h"

namespace nnlab::cli {
namespace {

int RunPlotTimesteps(const Globals& g, const std::vector<std::string>& jobs,
                     const std::string& out) {
  if (!absl::EndsWithIgnoreCase(out, ".svg") &&
      !absl::EndsWithIgnoreCase(out, ".png")) {
    return Usage(absl::StrCat("--out ", out,
                              ": the file name must end in .svg or .png"));
  }
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  std::vector<TimestepHistory> histories;
  for (const std::string& job_id : jobs) {
    auto job = (*client)->GetJob(job_id);
    if (!job.ok()) return Fail(job.status());
    const bool ended = job->state() == v1::JOB_STATE_COMPLETED ||
                       job->state() == v1::JOB_STATE_CANCELLED ||
                       job->state() == v1::JOB_STATE_FAILED;
    const int64_t until = job->step();
    TimestepHistory h;
    h.label = absl::StrCat("job ", job_id);
    v1::StreamMetricsRequest req;
    req.set_job_id(job_id);
    absl::Status s =
        (*client)->WatchMetrics(req, [&](const v1::MetricEvent& e) {
          h.Add(e);
          return ended || e.step() < until || e.phase() != v1::PHASE_TRAIN;
        });
    if (!s.ok()) return Fail(s);
    if (h.layers.empty()) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id,
          " has no per-timestep gradient norms (no recurrent layer, or "
          "stats_every -1)")));
    }
    histories.push_back(std::move(h));
  }
  absl::Status s = WritePanels(
      absl::StrCat("gradient norm through time: ", absl::StrJoin(jobs, ", ")),
      TimestepPanels(histories), out);
  if (!s.ok()) return Fail(s);
  if (!g.json) std::printf("wrote %s\n", out.c_str());
  return kExitOk;
}

}  // namespace

void AddPlotTimestepsCommand(CLI::App& app, Cli& cli) {
  struct Flags {
    std::vector<std::string> jobs;
    std::string out;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "plot-timesteps",
      "Plot ||dE/dh_t|| against t for the recurrent layers of jobs "
      "(SVG or PNG)");
  cmd->add_option("JOB", f->jobs, "Job ids, one panel per recurrent layer")
      ->required();
  cmd->add_option("--out", f->out, "Output file, .svg or .png")->required();
  cmd->callback([&cli, f] {
    cli.run = [&g = cli.globals, f] {
      return RunPlotTimesteps(g, f->jobs, f->out);
    };
  });
}

}  // namespace nnlab::cli

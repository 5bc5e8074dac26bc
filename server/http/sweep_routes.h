// The dashboard's sweep routes (http_server.h), as JSON bodies:
//   GET /api/sweeps              {"sweeps": [{"sweep": Sweep, "labels": [..]}]}
//   GET /api/sweeps/<id>         {"sweep": Sweep, "labels": [...]}
//   GET /api/sweeps/<id>/curves  the started trials' curves (?layer=NAME)
// Sweep is sweep.proto's message in proto3 JSON (field names as in the
// .proto); labels[i] names trial i by what differs between the trials
// (client/sweep_labels.h, the rule `nnlab plot SWEEP` uses).
//
// Curves: {"layers": [names], "layer": NAME, "trials": [{"index", "job_id",
// "label", "step": [...], "train_loss": [...], "eval_step": [...],
// "test_acc": [...], "test_loss": [...], "speed_step": [...], "speed":
// [...]}]}, one entry per started trial in trial order. "speed" is the
// learning speed ||dE/db|| (||dE/dW|| for a layer without bias) of the
// layer `layer`: the one asked for, else the first layer the trials report
// ("" and empty speeds when none does). Each series keeps at most
// kMaxCurvePoints points, evenly strided, the last one always kept;
// non-finite values are null. Read from the jobs' event histories, as a
// watcher replaying from step 0 reads them.
//
// Thread-safe (the managers are).
#ifndef NNLAB_SERVER_HTTP_SWEEP_ROUTES_H_
#define NNLAB_SERVER_HTTP_SWEEP_ROUTES_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/jobs.h"
#include "server/sweeps.h"

namespace nnlab::server {

inline constexpr int kMaxCurvePoints = 500;

std::string SweepListJson(const SweepManager& sweeps);
// InvalidArgument / NotFound as SweepManager::Get.
absl::StatusOr<std::string> SweepJson(const SweepManager& sweeps,
                                      const std::string& id);
// SweepJson's errors; DataLoss if a trial's event log is damaged.
absl::StatusOr<std::string> SweepCurvesJson(const SweepManager& sweeps,
                                            JobManager& jobs,
                                            const std::string& id,
                                            const std::string& layer);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_HTTP_SWEEP_ROUTES_H_

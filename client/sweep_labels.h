// Legend labels for a sweep's trials: what differs between them. Shared by
// `nnlab plot SWEEP` and the dashboard's sweep overlay (server/http), so
// both name a trial the same way. Depends on the messages only.
#ifndef NNLAB_CLIENT_SWEEP_LABELS_H_
#define NNLAB_CLIENT_SWEEP_LABELS_H_

#include <string>
#include <vector>

#include "nnlab/v1/sweep.pb.h"

namespace nnlab {

// One label per trial of `sweep`, in trial order: "field=value" for each
// of the trial's settings whose value is not the same in every trial,
// joined by spaces ("job.optimizer.learning_rate=0.1 model.seed=2"). A
// whole-model value ("model") is shown by its name: "model=deep4"; line
// breaks become spaces. "trial N" when no setting differs.
std::vector<std::string> SweepTrialLabels(const v1::Sweep& sweep);

}  // namespace nnlab

#endif  // NNLAB_CLIENT_SWEEP_LABELS_H_

// Weight snapshots: immutable copies of a model's parameters and buffers.
//
// Training publishes a WeightSet every few steps; inference, export and
// persistence read the latest one. A published set is never modified, so
// readers need no lock beyond taking the shared_ptr: nobody ever sees a
// half-updated set of weights.
#ifndef NNLAB_SERVER_WEIGHTS_H_
#define NNLAB_SERVER_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/model/model.h"
#include "core/tensor/tensor.h"
#include "core/train/run_state.h"
#include "nnlab/v1/model.pb.h"
#include "server/convert.h"
#include "server/storage.pb.h"

namespace nnlab::server {

struct WeightSet {
  std::vector<std::pair<std::string, Tensor>> params;
  std::vector<std::pair<std::string, Tensor>> buffers;
  int64_t trained_steps = 0;
};
using WeightsPtr = std::shared_ptr<const WeightSet>;

// Deep copy of `model`'s parameters and buffers.
std::shared_ptr<WeightSet> CaptureWeights(Model* model, int64_t trained_steps);
// Appends deep copies of `model`'s tensors to `w`, names prefixed by
// `prefix` (GAN pairs: "generator/", "discriminator/").
void AppendWeights(Model* model, absl::string_view prefix, WeightSet* w);

// Copies the tensors of `w` whose names start with `prefix` (stripped)
// into `model`. InvalidArgument (naming the tensor) if names, count or
// shapes differ from the model's.
absl::Status LoadWeights(const WeightSet& w, Model* model,
                         absl::string_view prefix = "");

// Wire / disk form (ModelFile.params, .buffers, .trained_steps).
void WeightsToProto(const WeightSet& w, bool raw, v1::ModelFile* file);
// Reads the tensors of `file` (validated as client input).
absl::StatusOr<std::shared_ptr<WeightSet>> WeightsFromProto(
    const v1::ModelFile& file, absl::string_view field, const Limits& limits);

// A checkpoint's training state, the one translation between RunState and
// StoredCheckpoint: weights and buffers as the checkpoint's ModelFile
// tensors (raw), with `trained_steps`; optimizer slots, step counts,
// trainer position and RNG states as its fields. Leaves job_id and the
// ModelFile's format_version and spec / gan to the caller.
void RunStateToProto(const RunState& state, int64_t trained_steps,
                     StoredCheckpoint* ckpt);
// Reads what RunStateToProto wrote (or an older checkpoint: RNG fields
// may be empty). Tensors are validated as client input; names and shapes
// are left to RunState::Restore, which checks them against the trainer.
absl::StatusOr<RunState> RunStateFromProto(const StoredCheckpoint& ckpt,
                                           const Limits& limits);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_WEIGHTS_H_

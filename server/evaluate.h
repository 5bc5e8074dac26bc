// The Evaluate RPC's work: a model's loss and accuracy over (part of) one
// split of a data set the server holds, computed with the core's Evaluate,
// the function a job evaluates its test split with. Kept apart from the
// gRPC handler (services.cc) so that it reads as core calls and errors.
#ifndef NNLAB_SERVER_EVALUATE_H_
#define NNLAB_SERVER_EVALUATE_H_

#include "absl/status/statusor.h"
#include "nnlab/v1/training.pb.h"
#include "server/convert.h"
#include "server/datasets.h"
#include "server/models.h"

namespace nnlab::server {

// Evaluates req.model_id on req.dataset's split ("test" when empty, or
// "train": the samples a job with that data set trains and evaluates on,
// e.g. MNIST's first 8,000 / last 2,000 digits), samples
// [offset, offset + limit) of it (limit 0: to the end). The samples are
// viewed with the model's input shape when their element counts agree (as
// a job's sample_shape would reshape them). The weights are the model's
// latest published ones, read once through its inference copy
// (ModelEntry::WithInferenceModel), so the result is that of one snapshot
// even while a job trains the model; other Infer/Evaluate calls on the
// model wait meanwhile.
//
// NotFound for an unknown model or data set. InvalidArgument for a split
// other than "", "test" or "train", a data set without a test split, a
// negative offset or limit, an offset at or past the split's end, a GAN,
// inputs whose element count differs from the model's, or targets the
// model's loss does not accept. ResourceExhausted if even one sample is
// over `limits` for this model.
absl::StatusOr<v1::EvaluateResponse> EvaluateOnDataset(
    ModelRegistry& models, DatasetRegistry& datasets, const Limits& limits,
    const v1::EvaluateRequest& req);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_EVALUATE_H_

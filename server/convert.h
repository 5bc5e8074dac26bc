// Translation between the wire contract (nnlab.v1 protos) and the core's
// plain structs, with all validation of client input done here, once, at
// the boundary. Errors are InvalidArgument naming the offending field as a
// path ("spec.layers[2].dense.units"), or ResourceExhausted for limits.
// Stateless and thread-safe.
#ifndef NNLAB_SERVER_CONVERT_H_
#define NNLAB_SERVER_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/layers/spec.h"
#include "core/model/model.h"
#include "core/optim/optimizer.h"
#include "core/tensor/tensor.h"
#include "core/train/stats.h"
#include "core/train/trainer.h"
#include "google/protobuf/repeated_field.h"
#include "nnlab/v1/model.pb.h"
#include "nnlab/v1/tensor.pb.h"
#include "nnlab/v1/training.pb.h"

namespace nnlab::server {

// Bounds on what one request may ask for.
struct Limits {
  int64_t max_params = 50'000'000;     // Trainable parameters per model.
  int64_t max_dim = int64_t{1} << 24;  // Any single dimension.
  int64_t max_tensor_elements = int64_t{1} << 27;  // One tensor (512 MiB).
  int max_layers = 1000;  // Layers per model, nesting included.
  int max_depth = 8;      // Residual nesting.
};

// Shape from repeated dims: each in [1, limits.max_dim] (or [0, max_dim]
// when `allow_zero`), at most 8 dimensions, element count within
// limits.max_tensor_elements.
absl::StatusOr<Shape> ShapeFromProto(
    const google::protobuf::RepeatedField<int64_t>& dims,
    absl::string_view field, const Limits& limits, bool allow_zero = false);
void ShapeToProto(const Shape& shape,
                  google::protobuf::RepeatedField<int64_t>* dims);

// Validates and translates a model spec. Layer kinds and their fields are
// checked here; shape compatibility is checked by the core's Model::Build
// (whose errors name the layer). `field` prefixes error paths ("spec").
absl::StatusOr<ModelSpec> ModelSpecFromProto(const v1::ModelSpec& proto,
                                             absl::string_view field,
                                             const Limits& limits);

// The core's EstimateModel (core/model/model.h) as the limits read it.
// The parameters `spec` builds, computed without allocating: exact for
// every spec Model::Build accepts, and for any other at least what Build
// allocates before it fails.
double EstimateParameters(const ModelSpec& spec);
// Upper bound on the largest per-sample buffer (the input, a layer output,
// an im2col matrix, recurrent caches) `spec` allocates, in elements.
double EstimateSampleElements(const ModelSpec& spec);

// ResourceExhausted when a batch of `batch` samples through `spec` would
// need a buffer beyond limits.max_tensor_elements (EstimateSampleElements
// times the batch).
absl::Status CheckBatchSize(const ModelSpec& spec, int64_t batch,
                            const Limits& limits);
// The same with EstimateSampleElements(spec) computed once by the caller.
absl::Status CheckBatchSize(double sample_elements, int64_t batch,
                            const Limits& limits);

// Builds `spec` after checking its size against limits.max_params and its
// per-sample buffers against limits.max_tensor_elements, before anything
// is allocated: ResourceExhausted naming the count and the limit. Errors of
// an invalid spec are Model::Build's, prefixed with `field`.
absl::StatusOr<std::unique_ptr<Model>> BuildModelChecked(
    const ModelSpec& spec, absl::string_view field, const Limits& limits);

// Validates and translates an optimizer config (0 selects the defaults the
// proto documents).
absl::StatusOr<OptimizerConfig> OptimizerFromProto(
    const v1::OptimizerConfig& proto, absl::string_view field);

// A tensor from the wire: one of `data`, `raw_data` and `uint8_data` (with
// its divisor), element count equal to the shape's, within limits, and all
// values finite.
absl::StatusOr<Tensor> TensorFromProto(const v1::Tensor& proto,
                                       absl::string_view field,
                                       const Limits& limits);
// Writes `t` as packed floats, or as raw little-endian bytes if `raw`.
void TensorToProto(const Tensor& t, bool raw, v1::Tensor* proto);

// Core statistics to wire events.
// The steps of a T-step sequence whose ||dE/dh_t|| go on the wire
// (LayerStats.timestep_grad_norms): all of them for T <= kMaxTimestepPoints,
// else kMaxTimestepPoints evenly spaced, t_i = round(i (T - 1) / (K - 1)),
// first and last included. Increasing.
inline constexpr int64_t kMaxTimestepPoints = 64;
std::vector<int64_t> TimestepSample(int64_t steps);

// Copies `s`, with its per-timestep norms down-sampled by TimestepSample.
void LayerStatsToProto(const LayerStats& s, v1::LayerStats* proto);
void StepStatsToEvent(const StepStats& s, v1::MetricEvent* event);

// Fills parameter_count, layers, input_shape and output_shape of `info`
// from a built model. Layer names get `prefix` (e.g. "generator/").
void DescribeModel(Model* model, absl::string_view prefix, v1::Model* info);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CONVERT_H_

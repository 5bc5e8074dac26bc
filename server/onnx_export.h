// ONNX export: a model's definition and a weight snapshot as an ONNX
// ModelProto (the schema of Debian's libonnx-dev), opset 13.
//
// Graph contract (README, "ONNX export"):
//   input  "input"  float [N, input_shape...]  (N symbolic: "batch")
//   output "output" float [N, output_shape...] what Infer returns (logits
//                   for softmax classifiers)
//   output "probabilities" float [N, classes]  softmax classifiers only
// Dropout is the identity at inference and emits nothing; batch norm uses
// its running statistics.
#ifndef NNLAB_SERVER_ONNX_EXPORT_H_
#define NNLAB_SERVER_ONNX_EXPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/layers/spec.h"
#include "server/weights.h"

namespace nnlab::server {

// The opset the exported graphs declare (default domain).
inline constexpr int kOnnxOpset = 13;

// Whether layers of `kind` have an ONNX form (every kind of
// core/layers/registry.h today).
bool OnnxExportable(absl::string_view kind);

// Serialized ONNX ModelProto of the network `spec` with the tensors of `w`
// whose names start with `prefix` (GAN halves: "generator/"). `graph_name`
// names the graph. `classifier` adds the "probabilities" output.
// FailedPrecondition naming the layer when a layer has no ONNX form;
// Internal when `w` lacks a tensor the spec needs (a broken snapshot).
absl::StatusOr<std::string> ExportOnnx(const ModelSpec& spec,
                                       const WeightSet& w,
                                       absl::string_view prefix,
                                       absl::string_view graph_name,
                                       bool classifier);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_ONNX_EXPORT_H_

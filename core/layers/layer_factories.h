// Factories of the concrete layers, registered by kind in the layer
// registry (registry.h, layer_factory.cc).
// Each returns InvalidArgument for a spec field out of range (the message
// names the field; MakeLayer prefixes the layer name). Shape checks happen
// later, in Layer::OutputShape.
#ifndef NNLAB_CORE_LAYERS_LAYER_FACTORIES_H_
#define NNLAB_CORE_LAYERS_LAYER_FACTORIES_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/layers/layer.h"
#include "core/layers/spec.h"

namespace nnlab {

// dense.cc: y = x W^T + b, W [units, n_in]; input [N, n_in] (rank 1 per
// sample; flatten first for images).
absl::StatusOr<std::unique_ptr<Layer>> NewDense(const LayerSpec& spec);

// activation.cc: elementwise sigmoid, tanh and ReLU (no spec fields).
absl::StatusOr<std::unique_ptr<Layer>> NewSigmoid(const LayerSpec& spec);
absl::StatusOr<std::unique_ptr<Layer>> NewTanh(const LayerSpec& spec);
absl::StatusOr<std::unique_ptr<Layer>> NewRelu(const LayerSpec& spec);
// activation.cc: max(x, alpha x), 0 <= alpha < 1.
absl::StatusOr<std::unique_ptr<Layer>> NewLeakyRelu(const LayerSpec& spec);

// dropout.cc: inverted dropout, 0 < keep_prob <= 1; any input shape.
absl::StatusOr<std::unique_ptr<Layer>> NewDropout(const LayerSpec& spec);

// batch_norm.cc: per feature of [F] or per channel of [C, H, W] inputs;
// 0 <= momentum < 1, epsilon > 0.
absl::StatusOr<std::unique_ptr<Layer>> NewBatchNorm(const LayerSpec& spec);

// conv2d.cc: [C, H, W] -> [filters, Ho, Wo], square kernel, stride, zero
// padding; W [filters, C, kernel, kernel], b [filters]. padding < kernel is
// checked by OutputShape, so Cost knows what a spec breaking it asks for.
absl::StatusOr<std::unique_ptr<Layer>> NewConv2D(const LayerSpec& spec);

// max_pool2d.cc / avg_pool2d.cc: [C, H, W] -> [C, Ho, Wo], no padding; the
// windows must tile the input exactly ((H - kernel) % stride == 0).
absl::StatusOr<std::unique_ptr<Layer>> NewMaxPool2D(const LayerSpec& spec);
absl::StatusOr<std::unique_ptr<Layer>> NewAvgPool2D(const LayerSpec& spec);

// global_avg_pool.cc: [C, H, W] -> [C].
absl::StatusOr<std::unique_ptr<Layer>> NewGlobalAvgPool(const LayerSpec& spec);

// flatten.cc: any shape -> [product of dims].
absl::StatusOr<std::unique_ptr<Layer>> NewFlatten(const LayerSpec& spec);

// residual.cc: x + F(x) with F = spec.body (non-empty); identity shortcut
// when shapes match, else a 1x1 (strided) conv or a dense projection.
absl::StatusOr<std::unique_ptr<Layer>> NewResidual(const LayerSpec& spec);

// rnn.cc / lstm.cc: recurrent layers (recurrent.h), [T, F] -> [T, units]
// (return_sequences) or [units]; units >= 1, bptt_window >= 0.
absl::StatusOr<std::unique_ptr<Layer>> NewRnn(const LayerSpec& spec);
absl::StatusOr<std::unique_ptr<Layer>> NewLstm(const LayerSpec& spec);
// time_dense.cc: dense applied at every step, [T, I] -> [T, units].
absl::StatusOr<std::unique_ptr<Layer>> NewTimeDense(const LayerSpec& spec);

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_LAYER_FACTORIES_H_

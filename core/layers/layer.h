// Layer: the unit models are made of.
//
// Tensors passed to Forward/Backward carry the batch as their first
// dimension; shapes in OutputShape() are per sample (no batch dimension).
// A layer owns its parameters and their gradients, and caches what Backward
// needs during Forward. Layers are not thread-safe.
#ifndef NNLAB_CORE_LAYERS_LAYER_H_
#define NNLAB_CORE_LAYERS_LAYER_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/layers/spec.h"
#include "core/tensor/param.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"

namespace nnlab {

enum class Mode { kTrain, kEval };

class ConvChain;  // core/layers/conv_chain.h

// What a layer costs at one per-sample input shape, known from its spec
// before anything is allocated (a server refuses specs over its limits by
// it). Counts saturate at INT64_MAX: a spec may ask for more than int64
// counts, and must still compare above every limit.
struct LayerCost {
  // Trainable floats Init allocates: the sum of the Params() sizes.
  int64_t params = 0;
  // The largest single buffer the layer allocates per sample of a batch,
  // in floats: its output, a convolution's im2col matrix, a recurrent
  // layer's per-step caches (an upper bound; a batch of N needs N times it).
  int64_t buffer_floats = 0;
};

// Saturating cost arithmetic: arguments below 0 count as 0, results stop
// at INT64_MAX.
inline int64_t CostAdd(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a < 0 ? 0 : a, b < 0 ? 0 : b, &r)) {
    return std::numeric_limits<int64_t>::max();
  }
  return r;
}
inline int64_t CostMul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a < 0 ? 0 : a, b < 0 ? 0 : b, &r)) {
    return std::numeric_limits<int64_t>::max();
  }
  return r;
}
inline int64_t CostElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = CostMul(n, d);
  return n;
}

class Layer {
 public:
  virtual ~Layer() = default;

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }
  virtual absl::string_view kind() const = 0;

  // The per-sample output shape for per-sample input `in`, or
  // InvalidArgument naming the layer and the shapes.
  virtual absl::StatusOr<Shape> OutputShape(const Shape& in) const = 0;

  // What Init(in) and a Forward/Backward at input `in` allocate, computed
  // from the spec alone (nothing is allocated). Exact when OutputShape(in)
  // is OK. Defined for every `in`: for one OutputShape refuses it is what
  // the layer would allocate had it accepted it, so a spec far over a limit
  // can be refused as such whatever else is wrong with it. The default: no
  // parameters, the output as the only buffer.
  virtual LayerCost Cost(const Shape& in) const;

  // Allocates and initialises parameters for per-sample input `in`.
  // REQUIRES: OutputShape(in) is OK. Called once, by the model builder.
  virtual void Init(const Shape& in, InitKind init, Rng* rng) {}

  // out = f(in). `in` must stay alive and unchanged until Backward.
  // `out` is resized by the layer (its buffer is reused across steps).
  virtual void Forward(const Tensor& in, Tensor* out, Mode mode) = 0;

  // Given dE/d(out) of the last Forward, adds dE/d(param) into every
  // parameter gradient and writes dE/d(in) to `grad_in` (resized by the
  // layer) unless `grad_in` is null (first layer: nothing needs it).
  virtual void Backward(const Tensor& grad_out, Tensor* grad_in) = 0;

  virtual std::vector<Param> Params() { return {}; }

  // Non-trainable state that must survive a checkpoint (e.g. batch-norm
  // running statistics), as named tensors owned by the layer.
  virtual std::vector<std::pair<std::string, Tensor*>> Buffers() { return {}; }

  // For activation layers: fraction of units of `out` (this layer's output)
  // that are saturated (sigmoid/tanh) or dead (ReLU); -1 for other layers.
  virtual double SaturatedFraction(const Tensor& out) const { return -1.0; }

  // Evaluation-mode fusion (core/layers/conv_chain.h): adds this layer,
  // applied to the chain's current value, and returns true; or returns
  // false, leaving `chain` as it was, where the layer cannot join there
  // (the default).
  virtual bool AppendToConvChain(ConvChain* chain) { return false; }

  // Layers that draw random numbers while training (dropout) use this one;
  // the model sets it before the first Forward.
  virtual void SetRng(Rng* rng) {}

 private:
  std::string name_;
};

// Builds one layer from its spec for per-sample input `in`: validates,
// constructs and initialises it, and reports its output shape.
// Errors are InvalidArgument and start with the layer's name.
absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const LayerSpec& spec,
                                                 const std::string& name,
                                                 const Shape& in,
                                                 InitKind default_init,
                                                 Rng* rng, Shape* out);
// What MakeLayer checks, without initialising (nothing the size of the
// layer's parameters is allocated): the output shape, or its error.
absl::StatusOr<Shape> LayerOutputShape(const LayerSpec& spec,
                                       const std::string& name,
                                       const Shape& in);
// LayerOutputShape, and the layer's Cost(in) in `cost`: set whenever the
// spec's own fields are valid, even if the shapes are not (see
// Layer::Cost), else zero.
absl::StatusOr<Shape> EstimateLayer(const LayerSpec& spec,
                                    const std::string& name, const Shape& in,
                                    LayerCost* cost);

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_LAYER_H_

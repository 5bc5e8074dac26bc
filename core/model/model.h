// Models: a validated stack of layers with a loss.
//
// LayerStack runs layers in order with one reused output buffer per layer
// (no allocation after the first step at a given batch size); Residual
// blocks reuse it for their body. Model is the top level: a Sequential
// network built from a ModelSpec, its loss, its RNG, and its statistics.
// Neither is thread-safe: a model is trained by one thread at a time
// (the server serialises access).
#ifndef NNLAB_CORE_MODEL_MODEL_H_
#define NNLAB_CORE_MODEL_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/layers/conv_chain.h"
#include "core/layers/layer.h"
#include "core/layers/spec.h"
#include "core/model/loss.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"
#include "core/train/stats.h"

namespace nnlab {

// What building a list of layers, or a model, costs, known before anything
// is allocated (see EstimateModel). Counts saturate at INT64_MAX.
struct ModelCost {
  // OK exactly when the build would succeed; else the build's error, word
  // for word.
  absl::Status status;
  // The per-sample output shape; meaningful when `status` is OK.
  Shape output_shape;
  // Trainable parameters: the built ParameterCount() when `status` is OK;
  // on an error, what the layers up to and including the failing one claim
  // (Layer::Cost), at least what the build allocates before it fails.
  int64_t params = 0;
  // The largest single buffer per sample (see LayerCost), over the same
  // layers; for a model, its input too.
  int64_t buffer_floats = 0;
};

class LayerStack {
 public:
  LayerStack() = default;
  LayerStack(LayerStack&&) = default;
  LayerStack& operator=(LayerStack&&) = default;

  // Builds `specs` in order for per-sample input `in`. Layer names default
  // to `prefix` + kind + index. Errors name the layer.
  static absl::StatusOr<LayerStack> Build(const std::vector<LayerSpec>& specs,
                                          const Shape& in,
                                          InitKind default_init, Rng* rng,
                                          const std::string& prefix);
  // The output shape Build would give, or its error, without building:
  // nothing the size of a layer's parameters is allocated.
  static absl::StatusOr<Shape> OutputShape(const std::vector<LayerSpec>& specs,
                                           const Shape& in,
                                           const std::string& prefix);
  // What Build(specs, in, ..., prefix) would cost, and its error, without
  // building. The walk stops at the first layer that fails.
  static ModelCost Estimate(const std::vector<LayerSpec>& specs,
                            const Shape& in, const std::string& prefix);

  // Runs every layer; returns the last output (owned by the stack), or `x`
  // itself when the stack is empty. In Mode::kEval the leading layers that
  // a ConvChain can fuse run as one (core/layers/conv_chain.h): their
  // output(i) is then not written, except the last one's.
  const Tensor& Forward(const Tensor& x, Mode mode);
  // How many leading layers the last Forward ran fused (0 in training,
  // where nothing fuses, or where oneDNN refused the batch size).
  int fused_layers() const { return fused_layers_; }
  // Backward through every layer; see Layer::Backward for `grad_in`.
  void Backward(const Tensor& grad_out, Tensor* grad_in);

  std::vector<Param> Params();
  std::vector<std::pair<std::string, Tensor*>> Buffers();
  void SetRng(Rng* rng);

  int size() const { return static_cast<int>(layers_.size()); }
  Layer* layer(int i) { return layers_[i].get(); }
  const Layer* layer(int i) const { return layers_[i].get(); }
  // Output of layer i from the last Forward.
  const Tensor& output(int i) const { return outputs_[i]; }
  // Per-sample output shape of layer i.
  const Shape& output_shape(int i) const { return shapes_[i]; }
  const Shape& input_shape() const { return input_shape_; }
  const Shape& final_shape() const {
    return shapes_.empty() ? input_shape_ : shapes_.back();
  }

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Tensor> outputs_;
  std::vector<Shape> shapes_;
  Shape input_shape_;
  Tensor grad_a_, grad_b_;  // Ping-pong buffers for Backward.
  // The evaluation-mode fusion of layers [0, chain_layers_), planned at
  // the first evaluation; null where it fuses nothing.
  std::unique_ptr<ConvChain> chain_;
  int chain_layers_ = 0;
  bool chain_planned_ = false;
  int fused_layers_ = 0;
};

// What Model::Build(spec) would cost, and whether it would succeed (the
// same checks, the same errors), computed without allocating any layer's
// parameters or buffers: a server can refuse a spec over its limits before
// it costs memory. A spec that is both over a limit and invalid still
// reports its claimed size (ModelCost::params).
ModelCost EstimateModel(const ModelSpec& spec);

class Model {
 public:
  // Validates and builds `spec`: InvalidArgument naming the offending layer
  // for bad sizes, unknown kinds or shape mismatches.
  static absl::StatusOr<std::unique_ptr<Model>> Build(const ModelSpec& spec);

  const ModelSpec& spec() const { return spec_; }
  Loss* loss() { return loss_.get(); }
  const Loss* loss() const { return loss_.get(); }
  Rng* rng() { return &rng_; }
  LayerStack& layers() { return stack_; }
  const LayerStack& layers() const { return stack_; }
  const Shape& input_shape() const { return spec_.input_shape; }
  const Shape& output_shape() const { return stack_.final_shape(); }

  // InvalidArgument unless `x` is [N, input_shape...] with N >= 1 and all
  // values finite.
  absl::Status CheckInput(const Tensor& x) const;

  // Forward pass on a batch; returns the output (owned by the model,
  // valid until the next Forward). REQUIRES: CheckInput(x) is OK.
  const Tensor& Forward(const Tensor& x, Mode mode);
  // Backward from dLoss/doutput; accumulates into parameter gradients.
  void Backward(const Tensor& grad_out);
  void ZeroGrad();

  std::vector<Param> Params();
  // Non-trainable state (batch-norm running statistics...).
  std::vector<std::pair<std::string, Tensor*>> Buffers();
  int64_t ParameterCount();

  // Per parameterised top-level layer statistics from the last
  // Forward/Backward. `weights_before`, if given, holds the parameter values
  // before the optimizer step, parallel to Params(), for update_ratio.
  std::vector<LayerStats> CollectLayerStats(
      const std::vector<Tensor>* weights_before);

 private:
  Model() = default;
  ModelSpec spec_;
  LayerStack stack_;
  std::unique_ptr<Loss> loss_;
  Rng rng_;
  // stack_.Params(), gathered once at Build (layers never move their
  // parameter tensors), so ZeroGrad allocates nothing per step.
  std::vector<Param> params_;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_MODEL_MODEL_H_

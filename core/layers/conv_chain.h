// Evaluation-mode fusion of a network's leading convolutional layers
// (LayerStack::Forward runs it in Mode::kEval): each convolution with the
// batch norm after it folded into its weights and bias, and its ReLU and
// residual shortcut sum applied as it writes, every intermediate result
// kept in oneDNN's blocked layouts (OneDnnConvChain). What it saves over
// the layers one by one: every batch norm, ReLU and shortcut pass over
// memory, and the two layout conversions around each convolution.
//
// Layers join through Layer::AppendToConvChain, in order. The chain keeps
// pointers to their parameters and running statistics and folds them
// again at every Forward, so it stays right while training changes them.
// Results match the layers run one by one within float rounding (folding
// reorders the products). Not thread-safe, like the layers it fuses.
#ifndef NNLAB_CORE_LAYERS_CONV_CHAIN_H_
#define NNLAB_CORE_LAYERS_CONV_CHAIN_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/kernels/onednn_conv.h"
#include "core/tensor/tensor.h"

namespace nnlab {

class ConvChain {
 public:
  // What the layers have added so far; copied by a layer that adds
  // several steps, to undo them when a later one cannot join.
  struct Plan {
    struct Step {
      ChainConv conv;
      const Tensor* weight = nullptr;  // [F, C, K, K].
      const Tensor* bias = nullptr;    // [F].
      // The batch norm folded in, if any: gamma, beta, mean and variance.
      const Tensor* bn[4] = {nullptr, nullptr, nullptr, nullptr};
      double epsilon = 0;
    };
    std::vector<Step> steps;
    int value = -1;         // Slot holding the current value; -1: the input.
    std::vector<int> live;  // Slots a residual block still needs.
    Shape shape;            // Per-sample shape of the current value.
  };

  // --- For layers (Layer::AppendToConvChain). The Add/Fold calls return
  // false, changing nothing, where the layer cannot join at this point.

  const Plan& plan() const { return plan_; }
  void set_plan(Plan plan) { plan_ = std::move(plan); }

  // A convolution of the current value (g.n is ignored), into a new slot.
  void AddConv(const ConvGeometry& g, const Tensor* weight, const Tensor* bias);
  // y = gamma (x - mean) / sqrt(var + epsilon) + beta on the current
  // value, folded into the convolution that made it (one without
  // post-operations yet).
  bool FoldBatchNorm(const Tensor* gamma, const Tensor* beta,
                     const Tensor* mean, const Tensor* var, double epsilon);
  // max(0, x) on the current value, when a convolution made it.
  bool AddRelu();
  // Residual blocks: KeepLive(slot) before the body so that no step of it
  // overwrites `slot` (the block input, or the projection's output), then
  // AddShortcut(slot) after it adds `slot` to the body's result in place
  // (where the body's last step is a convolution that does not read it).
  void KeepLive(int slot);
  bool AddShortcut(int slot);
  // Makes `slot` the current value (a residual body starts from the block
  // input again after the projection).
  void set_value(int slot, const Shape& shape);

  // --- For LayerStack.

  int size() const { return static_cast<int>(plan_.steps.size()); }
  // The per-sample output shape.
  const Shape& output_shape() const { return plan_.shape; }
  // y = the chain on x ([N, C, H, W]); false, with y untouched, where
  // oneDNN refused this batch size (the layers then run one by one).
  // Batches are split into one part per BLAS thread.
  bool Forward(const Tensor& x, Tensor* y);

 private:
  // The kernel for `part` at batch n, built on first use; the oldest
  // dropped beyond kMaxCachedSizes sizes. Null where oneDNN refused it.
  OneDnnConvChain* KernelFor(int part, int64_t n);

  static constexpr size_t kMaxCachedSizes = 4;

  Plan plan_;
  std::vector<Tensor> folded_w_, folded_b_;  // Per step with a batch norm.
  std::vector<const float*> weights_, biases_;
  std::vector<std::vector<std::pair<int64_t, std::unique_ptr<OneDnnConvChain>>>>
      kernels_;  // Per part.
};

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_CONV_CHAIN_H_

// Losses: the scalar cost of a batch of predictions and its gradient.
#ifndef NNLAB_CORE_MODEL_LOSS_H_
#define NNLAB_CORE_MODEL_LOSS_H_

#include <memory>

#include "absl/status/status.h"
#include "core/layers/spec.h"
#include "core/tensor/tensor.h"

namespace nnlab {

class Loss {
 public:
  virtual ~Loss() = default;

  // Returns the mean loss over the batch of `pred` [N, ...] against
  // `target` and writes dLoss/dpred to `grad` (resized; same shape as pred).
  // Targets: softmax cross-entropy and sigmoid cross-entropy on classes take
  // class indices [N] stored as floats; MSE and sigmoid cross-entropy take a
  // tensor shaped like `pred`.
  // REQUIRES: ValidateTarget(pred.shape(), target) is OK.
  virtual float Compute(const Tensor& pred, const Tensor& target,
                        Tensor* grad) = 0;

  // Number of rows of `pred` whose argmax equals the target class, for
  // classification losses; -1 when accuracy has no meaning.
  virtual int64_t CountCorrect(const Tensor& pred, const Tensor& target) const;

  // InvalidArgument if `target` does not fit predictions of `pred_shape`
  // (batch first) or holds out-of-range class indices.
  virtual absl::Status ValidateTarget(const Shape& pred_shape,
                                      const Tensor& target) const = 0;

  // True if the loss treats outputs as class scores (softmax CE, sigmoid CE
  // on classes).
  virtual bool is_classifier() const { return false; }

  // True if outputs are [N, T, C] scored at each of T steps: accuracy is
  // then the fraction of (sample, step) pairs, CountCorrect / (N T).
  virtual bool per_step() const { return false; }
};

std::unique_ptr<Loss> MakeLoss(LossKind kind);

// Softmax cross-entropy per time step (LossKind::kSequenceSoftmaxCrossEntropy):
// logits [N, T, C] against class
// indices [N, T] (stored as floats); the mean over all N*T steps.
// dC/dz = (p - onehot(y)) / (N T). The loss of many-to-many models (the
// character model); Model::Build's softmax loss takes [N, C] only.
class SequenceSoftmaxCrossEntropy : public Loss {
 public:
  float Compute(const Tensor& pred, const Tensor& target,
                Tensor* grad) override;
  // Number of (sample, step) pairs whose argmax is the target.
  int64_t CountCorrect(const Tensor& pred, const Tensor& target) const override;
  absl::Status ValidateTarget(const Shape& pred_shape,
                              const Tensor& target) const override;
  bool is_classifier() const override { return true; }
  bool per_step() const override { return true; }
};

// Row-wise softmax of `logits` [N, C] into `probs` (resized).
void Softmax(const Tensor& logits, Tensor* probs);

}  // namespace nnlab

#endif  // NNLAB_CORE_MODEL_LOSS_H_

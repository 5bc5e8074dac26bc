// Losses. N = batch, C = classes / outputs per sample.
#include "core/model/loss.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace nnlab {
namespace {

int64_t ArgMax(const float* row, int64_t c) {
  return std::max_element(row, row + c) - row;
}

// Softmax + cross-entropy over the rows of `logits` [R, C] (Bishop 2006,
// 4.3.4): returns -1/R sum log p_{y_r} and writes dC/dz = (p - onehot(y))
// / R to `grad` (resized to [R, C]). `target` holds R class indices.
float RowSoftmaxCrossEntropy(const Tensor& logits, const Tensor& target,
                             Tensor* grad) {
  const int64_t rows = logits.rows(), c = logits.cols();
  Softmax(logits, grad);
  float* g = grad->data();
  double total = 0;
  const float inv = 1.0f / static_cast<float>(rows);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = g + r * c;
    const int64_t y = static_cast<int64_t>(target[r]);
    // Clamp so a confident wrong answer gives a large, finite cost.
    total -= std::log(std::max(row[y], 1e-30f));
    row[y] -= 1.0f;
    for (int64_t k = 0; k < c; ++k) row[k] *= inv;
  }
  return static_cast<float>(total / rows);
}

// Rows of `pred` [rows, c] whose argmax is the class in `target`.
int64_t CountCorrectRows(const float* pred, int64_t rows, int64_t c,
                         const Tensor& target) {
  int64_t correct = 0;
  for (int64_t r = 0; r < rows; ++r) {
    correct += ArgMax(pred + r * c, c) == int64_t(target[r]);
  }
  return correct;
}

// InvalidArgument unless every target is a class index in [0, classes).
absl::Status CheckClassIndices(const Tensor& target, int64_t classes) {
  for (int64_t i = 0; i < target.size(); ++i) {
    const float t = target[i];
    if (!(t >= 0 && t < classes) || t != std::floor(t)) {
      return absl::InvalidArgumentError(
          absl::StrCat("target ", i, " is ", t, ": not a class index in [0, ",
                       classes, ")"));
    }
  }
  return absl::OkStatus();
}

class SoftmaxCrossEntropy : public Loss {
 public:
  float Compute(const Tensor& pred, const Tensor& target,
                Tensor* grad) override {
    return RowSoftmaxCrossEntropy(pred, target, grad);
  }

  int64_t CountCorrect(const Tensor& pred,
                       const Tensor& target) const override {
    return CountCorrectRows(pred.data(), pred.rows(), pred.cols(), target);
  }

  absl::Status ValidateTarget(const Shape& pred_shape,
                              const Tensor& target) const override {
    if (pred_shape.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("softmax cross-entropy needs outputs [N, classes], got ",
                       ShapeToString(pred_shape)));
    }
    if (target.rank() != 1 || target.dim(0) != pred_shape[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat("targets must be class indices [", pred_shape[0],
                       "], got ", ShapeToString(target.shape())));
    }
    return CheckClassIndices(target, pred_shape[1]);
  }

  bool is_classifier() const override { return true; }
};

absl::Status SameShapeTarget(const char* loss, const Shape& pred_shape,
                             const Tensor& target) {
  if (target.shape() != pred_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        loss, " targets must have the outputs' shape ",
        ShapeToString(pred_shape), ", got ", ShapeToString(target.shape())));
  }
  if (!target.AllFinite()) {
    return absl::InvalidArgumentError(
        absl::StrCat(loss, " targets contain NaN or infinity"));
  }
  return absl::OkStatus();
}

// Quadratic cost (the lecture's): C = 1/(2N) sum_n ||y_n - a_n||^2;
// dC/da = (a - y) / N.
class Mse : public Loss {
 public:
  float Compute(const Tensor& pred, const Tensor& target,
                Tensor* grad) override {
    const int64_t n = pred.rows();
    grad->Resize(pred.shape());
    const float inv_n = 1.0f / static_cast<float>(n);
    double total = 0;
    for (int64_t i = 0; i < pred.size(); ++i) {
      const float d = pred[i] - target[i];
      total += double(d) * d;
      (*grad)[i] = d * inv_n;
    }
    return static_cast<float>(0.5 * total / n);
  }

  absl::Status ValidateTarget(const Shape& pred_shape,
                              const Tensor& target) const override {
    return SameShapeTarget("MSE", pred_shape, target);
  }
};

// Sigmoid + binary cross-entropy on logits z with targets t in [0, 1]:
// C = 1/N sum max(z, 0) - z t + log(1 + e^-|z|) (the stable form);
// dC/dz = (sigmoid(z) - t) / N.
class SigmoidCrossEntropy : public Loss {
 public:
  float Compute(const Tensor& pred, const Tensor& target,
                Tensor* grad) override {
    const int64_t n = pred.rows();
    grad->Resize(pred.shape());
    const float inv_n = 1.0f / static_cast<float>(n);
    double total = 0;
    for (int64_t i = 0; i < pred.size(); ++i) {
      const float z = pred[i], t = target[i];
      total += std::max(z, 0.0f) - z * t + std::log1p(std::exp(-std::abs(z)));
      (*grad)[i] = (1.0f / (1.0f + std::exp(-z)) - t) * inv_n;
    }
    return static_cast<float>(total / n);
  }

  absl::Status ValidateTarget(const Shape& pred_shape,
                              const Tensor& target) const override {
    return SameShapeTarget("sigmoid cross-entropy", pred_shape, target);
  }
};

// Sigmoid cross-entropy of outputs [N, C] against class indices [N], one-hot
// encoded: t_nk = [k == y_n]. Nielsen's cost (2015, eq. 63), summed over the
// C output units and averaged over the batch:
// C = -1/N sum_n sum_k t ln a + (1 - t) ln(1 - a), a = sigmoid(z), in the
// stable form above; dC/dz = (a - t) / N. A classifier: argmax(z) = argmax(a).
class SigmoidCrossEntropyClasses : public Loss {
 public:
  float Compute(const Tensor& pred, const Tensor& target,
                Tensor* grad) override {
    const int64_t n = pred.rows(), c = pred.cols();
    grad->Resize(pred.shape());
    const float inv_n = 1.0f / static_cast<float>(n);
    double total = 0;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t y = static_cast<int64_t>(target[r]);
      const float* z = pred.data() + r * c;
      float* g = grad->data() + r * c;
      for (int64_t k = 0; k < c; ++k) {
        const float t = k == y ? 1.0f : 0.0f;
        total += std::max(z[k], 0.0f) - z[k] * t +
                 std::log1p(std::exp(-std::abs(z[k])));
        g[k] = (1.0f / (1.0f + std::exp(-z[k])) - t) * inv_n;
      }
    }
    return static_cast<float>(total / n);
  }

  int64_t CountCorrect(const Tensor& pred,
                       const Tensor& target) const override {
    return CountCorrectRows(pred.data(), pred.rows(), pred.cols(), target);
  }

  absl::Status ValidateTarget(const Shape& pred_shape,
                              const Tensor& target) const override {
    if (pred_shape.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sigmoid cross-entropy on classes needs outputs [N, classes], got ",
          ShapeToString(pred_shape)));
    }
    if (target.rank() != 1 || target.dim(0) != pred_shape[0]) {
      return absl::InvalidArgumentError(
          absl::StrCat("targets must be class indices [", pred_shape[0],
                       "], got ", ShapeToString(target.shape())));
    }
    return CheckClassIndices(target, pred_shape[1]);
  }

  bool is_classifier() const override { return true; }
};

}  // namespace

int64_t Loss::CountCorrect(const Tensor& pred, const Tensor& target) const {
  return -1;
}

void Softmax(const Tensor& logits, Tensor* probs) {
  const int64_t n = logits.rows(), c = logits.cols();
  probs->Resize(logits.shape());
  for (int64_t r = 0; r < n; ++r) {
    const float* z = logits.data() + r * c;
    float* p = probs->data() + r * c;
    const float m = *std::max_element(z, z + c);  // Shift for stability.
    float sum = 0;
    for (int64_t k = 0; k < c; ++k) {
      p[k] = std::exp(z[k] - m);
      sum += p[k];
    }
    const float inv = 1.0f / sum;
    for (int64_t k = 0; k < c; ++k) p[k] *= inv;
  }
}

std::unique_ptr<Loss> MakeLoss(LossKind kind) {
  switch (kind) {
    case LossKind::kSoftmaxCrossEntropy:
      return std::make_unique<SoftmaxCrossEntropy>();
    case LossKind::kMse:
      return std::make_unique<Mse>();
    case LossKind::kSigmoidCrossEntropy:
      return std::make_unique<SigmoidCrossEntropy>();
    case LossKind::kSigmoidCrossEntropyClasses:
      return std::make_unique<SigmoidCrossEntropyClasses>();
    case LossKind::kSequenceSoftmaxCrossEntropy:
      return std::make_unique<SequenceSoftmaxCrossEntropy>();
  }
  return nullptr;
}

// The per-step loss is the row loss over [N*T, C]: its mean over all N*T
// steps is exactly the sequence loss.
float SequenceSoftmaxCrossEntropy::Compute(const Tensor& pred,
                                           const Tensor& target, Tensor* grad) {
  const int64_t rows = pred.dim(0) * pred.dim(1), c = pred.dim(2);
  Tensor logits = Tensor::View(const_cast<float*>(pred.data()), {rows, c});
  const float loss = RowSoftmaxCrossEntropy(logits, target, grad);
  grad->Resize(pred.shape());
  return loss;
}

int64_t SequenceSoftmaxCrossEntropy::CountCorrect(const Tensor& pred,
                                                  const Tensor& target) const {
  return CountCorrectRows(pred.data(), pred.dim(0) * pred.dim(1), pred.dim(2),
                          target);
}

absl::Status SequenceSoftmaxCrossEntropy::ValidateTarget(
    const Shape& pred_shape, const Tensor& target) const {
  if (pred_shape.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence cross-entropy needs outputs [N, T, classes], "
                     "got ",
                     ShapeToString(pred_shape)));
  }
  if (target.rank() != 2 || target.dim(0) != pred_shape[0] ||
      target.dim(1) != pred_shape[1]) {
    return absl::InvalidArgumentError(
        absl::StrCat("targets must be class indices [", pred_shape[0], ", ",
                     pred_shape[1], "], got ", ShapeToString(target.shape())));
  }
  return CheckClassIndices(target, pred_shape[2]);
}

}  // namespace nnlab

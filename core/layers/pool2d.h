// What the 2-D pooling layers (max_pool2d.cc, avg_pool2d.cc) share: the
// shape rule, the spec check, and a base holding kernel, stride and sizes.
// Internal to core.
#ifndef NNLAB_CORE_LAYERS_POOL2D_H_
#define NNLAB_CORE_LAYERS_POOL2D_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "core/layers/layer.h"
#include "core/tensor/tensor.h"

namespace nnlab {

// [C, H, W] -> [C, (H - kernel) / stride + 1, (W - kernel) / stride + 1],
// or InvalidArgument naming the shapes if the input is not rank 3, the
// kernel does not fit, or the windows do not tile the input exactly.
inline absl::StatusOr<Shape> Pool2DOutputShape(const Shape& in, int64_t kernel,
                                               int64_t stride) {
  if (in.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("expects [channels, height, width] per sample, got ",
                     ShapeToString(in)));
  }
  if (kernel > in[1] || kernel > in[2]) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", kernel, "x", kernel,
                     " is larger than the input ", ShapeToString(in)));
  }
  if ((in[1] - kernel) % stride != 0 || (in[2] - kernel) % stride != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel ", kernel, " with stride ", stride,
                     " does not divide the input ", ShapeToString(in),
                     " (need (size - kernel) % stride == 0)"));
  }
  return Shape{in[0], (in[1] - kernel) / stride + 1,
               (in[2] - kernel) / stride + 1};
}

// InvalidArgument unless kernel and stride are positive.
inline absl::Status ValidatePool2DSpec(int64_t kernel, int64_t stride) {
  if (kernel <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel must be positive, got ", kernel));
  }
  if (stride <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stride must be positive, got ", stride));
  }
  return absl::OkStatus();
}

// A pooling layer over [C, H, W] inputs, kernel x kernel windows with
// stride S and no padding; outputs [C, Ho, Wo].
class Pool2DLayer : public Layer {
 public:
  Pool2DLayer(int64_t kernel, int64_t stride) : k_(kernel), s_(stride) {}

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    return Pool2DOutputShape(in, k_, s_);
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    c_ = in[0];
    h_ = in[1];
    w_ = in[2];
    ho_ = (h_ - k_) / s_ + 1;
    wo_ = (w_ - k_) / s_ + 1;
  }

 protected:
  const int64_t k_, s_;
  int64_t c_ = 0, h_ = 0, w_ = 0, ho_ = 0, wo_ = 0;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_POOL2D_H_

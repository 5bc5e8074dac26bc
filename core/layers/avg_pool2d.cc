// 2-D average pooling: y = mean over each kernel x kernel window (stride S,
// no padding); each input in a window receives dy / kernel^2.
// N = batch, C = channels, H/W = input size, Ho/Wo = output size.
#include <memory>

#include "core/layers/layer_factories.h"
#include "core/layers/pool2d.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

class AvgPool2D : public Pool2DLayer {
 public:
  AvgPool2D(int64_t kernel, int64_t stride) : Pool2DLayer(kernel, stride) {}

  absl::string_view kind() const override { return "avg_pool2d"; }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t planes = in.dim(0) * c_;
    const float scale = 1.0f / float(k_ * k_);
    out->Resize({in.dim(0), c_, ho_, wo_});
    const float* x = in.data();
    float* y = out->data();
    int64_t o = 0;
    for (int64_t p = 0; p < planes; ++p) {
      const float* plane = x + p * h_ * w_;
      for (int64_t oh = 0; oh < ho_; ++oh) {
        for (int64_t ow = 0; ow < wo_; ++ow, ++o) {
          float s = 0.0f;
          for (int64_t ki = 0; ki < k_; ++ki) {
            const float* row = plane + (oh * s_ + ki) * w_ + ow * s_;
            for (int64_t kj = 0; kj < k_; ++kj) s += row[kj];
          }
          y[o] = s * scale;
        }
      }
    }
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    if (grad_in == nullptr) return;
    const int64_t n = grad_out.dim(0), planes = n * c_;
    const float scale = 1.0f / float(k_ * k_);
    grad_in->Resize({n, c_, h_, w_});
    grad_in->SetZero();
    const float* dy = grad_out.data();
    float* dx = grad_in->data();
    int64_t o = 0;
    for (int64_t p = 0; p < planes; ++p) {
      float* plane = dx + p * h_ * w_;
      for (int64_t oh = 0; oh < ho_; ++oh) {
        for (int64_t ow = 0; ow < wo_; ++ow, ++o) {
          const float g = dy[o] * scale;
          for (int64_t ki = 0; ki < k_; ++ki) {
            float* row = plane + (oh * s_ + ki) * w_ + ow * s_;
            for (int64_t kj = 0; kj < k_; ++kj) row[kj] += g;
          }
        }
      }
    }
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewAvgPool2D(const LayerSpec& spec) {
  NNLAB_RETURN_IF_ERROR(ValidatePool2DSpec(spec.kernel, spec.stride));
  return std::unique_ptr<Layer>(new AvgPool2D(spec.kernel, spec.stride));
}

}  // namespace nnlab

// 2-D max pooling: y = max over each kernel x kernel window (stride S, no
// padding); the gradient flows to the (first) maximum of each window.
// N = batch, C = channels, H/W = input size, Ho/Wo = output size.
#include <algorithm>
#include <memory>
#include <vector>

#include "core/layers/layer_factories.h"
#include "core/layers/pool2d.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

class MaxPool2D : public Pool2DLayer {
 public:
  MaxPool2D(int64_t kernel, int64_t stride) : Pool2DLayer(kernel, stride) {}

  absl::string_view kind() const override { return "max_pool2d"; }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t planes = in.dim(0) * c_;
    out->Resize({in.dim(0), c_, ho_, wo_});
    argmax_.resize(planes * ho_ * wo_);
    const float* x = in.data();
    float* y = out->data();
    int64_t o = 0;
    for (int64_t p = 0; p < planes; ++p) {
      const float* plane = x + p * h_ * w_;
      for (int64_t oh = 0; oh < ho_; ++oh) {
        for (int64_t ow = 0; ow < wo_; ++ow, ++o) {
          int64_t best = (oh * s_) * w_ + ow * s_;
          for (int64_t ki = 0; ki < k_; ++ki) {
            const int64_t row = (oh * s_ + ki) * w_ + ow * s_;
            for (int64_t kj = 0; kj < k_; ++kj) {
              if (plane[row + kj] > plane[best]) best = row + kj;
            }
          }
          y[o] = plane[best];
          argmax_[o] = static_cast<int32_t>(best);
        }
      }
    }
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    if (grad_in == nullptr) return;
    const int64_t n = grad_out.dim(0), planes = n * c_, per = ho_ * wo_;
    grad_in->Resize({n, c_, h_, w_});
    grad_in->SetZero();
    const float* dy = grad_out.data();
    float* dx = grad_in->data();
    for (int64_t p = 0; p < planes; ++p) {
      float* plane = dx + p * h_ * w_;
      for (int64_t j = 0; j < per; ++j) {
        plane[argmax_[p * per + j]] += dy[p * per + j];
      }
    }
  }

 private:
  std::vector<int32_t> argmax_;  // Offset of each output's max in its plane.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewMaxPool2D(const LayerSpec& spec) {
  NNLAB_RETURN_IF_ERROR(ValidatePool2DSpec(spec.kernel, spec.stride));
  return std::unique_ptr<Layer>(new MaxPool2D(spec.kernel, spec.stride));
}

}  // namespace nnlab

// Global average pooling (Lin et al. 2014, "Network in Network"):
// [C, H, W] -> [C], y_c = mean of channel c; dx = dy_c / (H W).
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/layers/layer_factories.h"

namespace nnlab {
namespace {

class GlobalAvgPool : public Layer {
 public:
  absl::string_view kind() const override { return "global_avg_pool"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    if (in.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("expects [channels, height, width] per sample, got ",
                       ShapeToString(in)));
    }
    return Shape{in[0]};
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    c_ = in[0];
    hw_ = in[1] * in[2];
    in_shape_ = in;
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t planes = in.dim(0) * c_;
    const float scale = 1.0f / float(hw_);
    out->Resize({in.dim(0), c_});
    const float* x = in.data();
    float* y = out->data();
    for (int64_t p = 0; p < planes; ++p) {
      float s = 0.0f;
      for (int64_t j = 0; j < hw_; ++j) s += x[p * hw_ + j];
      y[p] = s * scale;
    }
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    if (grad_in == nullptr) return;
    const int64_t n = grad_out.dim(0), planes = n * c_;
    const float scale = 1.0f / float(hw_);
    grad_in->Resize({n, in_shape_[0], in_shape_[1], in_shape_[2]});
    const float* dy = grad_out.data();
    float* dx = grad_in->data();
    for (int64_t p = 0; p < planes; ++p) {
      const float g = dy[p] * scale;
      for (int64_t j = 0; j < hw_; ++j) dx[p * hw_ + j] = g;
    }
  }

 private:
  int64_t c_ = 0, hw_ = 0;
  Shape in_shape_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewGlobalAvgPool(const LayerSpec&) {
  return std::unique_ptr<Layer>(new GlobalAvgPool());
}

}  // namespace nnlab

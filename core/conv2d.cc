// 2-D convolution (cross-correlation), NCHW, by im2col + GEMM (Chellapilla
// et al. 2006): per sample, col [C*K*K, Ho*Wo] holds the receptive fields
// and y = W col + b with W [F, C*K*K].
// N = batch, C = input channels, H/W = input size, F = filters, K = kernel,
// Ho/Wo = output size, P = padding, S = stride.
#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/blas.h"
#include "core/init.h"
#include "core/layers.h"
#include "core/vec_sum.h"

namespace nnlab {
namespace {

class Conv2D : public Layer {
 public:
  Conv2D(int64_t filters, int64_t kernel, int64_t stride, int64_t padding)
      : f_(filters), k_(kernel), s_(stride), p_(padding) {}

  absl::string_view kind() const override { return "conv2d"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    if (in.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("expects [channels, height, width] per sample, got ",
                       ShapeToString(in)));
    }
    if (k_ > in[1] + 2 * p_ || k_ > in[2] + 2 * p_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kernel ", k_, "x", k_, " is larger than the padded input (input ",
          ShapeToString(in), ", padding ", p_, ")"));
    }
    return Shape{f_, (in[1] + 2 * p_ - k_) / s_ + 1,
                 (in[2] + 2 * p_ - k_) / s_ + 1};
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    c_ = in[0];
    h_ = in[1];
    w_ = in[2];
    ho_ = (h_ + 2 * p_ - k_) / s_ + 1;
    wo_ = (w_ + 2 * p_ - k_) / s_ + 1;
    ckk_ = c_ * k_ * k_;
    pointwise_ = k_ == 1 && s_ == 1 && p_ == 0;
    weight_ = Tensor({f_, c_, k_, k_});
    weight_grad_ = Tensor({f_, c_, k_, k_});
    bias_ = Tensor({f_});
    bias_grad_ = Tensor({f_});
    InitWeights(init, ckk_, f_ * k_ * k_, rng, &weight_);
    if (!pointwise_) {
      col_ = Tensor({ckk_, ho_ * wo_});
      dcol_ = Tensor({ckk_, ho_ * wo_});
    }
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = in.dim(0), hw = ho_ * wo_;
    in_ = &in;
    out->Resize({n, f_, ho_, wo_});
    for (int64_t i = 0; i < n; ++i) {
      const float* col = Columns(in.data() + i * c_ * h_ * w_);
      float* y = out->data() + i * f_ * hw;
      for (int64_t f = 0; f < f_; ++f) {
        std::fill(y + f * hw, y + (f + 1) * hw, bias_[f]);
      }
      Gemm(false, false, f_, hw, ckk_, 1.0f, weight_.data(), ckk_, col, hw,
           1.0f, y, hw);
    }
  }

  // dW += dy col^T, db += sum dy, dcol = W^T dy scattered back by col2im.
  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int64_t n = grad_out.dim(0), hw = ho_ * wo_, chw = c_ * h_ * w_;
    if (grad_in != nullptr) grad_in->Resize(in_->shape());
    for (int64_t i = 0; i < n; ++i) {
      const float* dy = grad_out.data() + i * f_ * hw;
      const float* col = Columns(in_->data() + i * chw);
      Gemm(false, true, f_, ckk_, hw, 1.0f, dy, hw, col, hw, 1.0f,
           weight_grad_.data(), ckk_);
      for (int64_t f = 0; f < f_; ++f) bias_grad_[f] += VecSum(dy + f * hw, hw);
      if (grad_in == nullptr) continue;
      float* dx = grad_in->data() + i * chw;
      if (pointwise_) {
        Gemm(true, false, ckk_, hw, f_, 1.0f, weight_.data(), ckk_, dy, hw,
             0.0f, dx, hw);
      } else {
        Gemm(true, false, ckk_, hw, f_, 1.0f, weight_.data(), ckk_, dy, hw,
             0.0f, dcol_.data(), hw);
        Col2Im(dcol_.data(), dx);
      }
    }
  }

  std::vector<Param> Params() override {
    return {{name() + ".weight", &weight_, &weight_grad_},
            {name() + ".bias", &bias_, &bias_grad_}};
  }

 private:
  // Output columns [lo, hi) of kernel column kj whose input column
  // ow * S - P + kj lies inside [0, W); the rest read zero padding.
  void ValidColumns(int64_t kj, int64_t* lo, int64_t* hi) const {
    const int64_t before = p_ - kj;         // Need ow * S >= before.
    const int64_t last = w_ - 1 + p_ - kj;  // Need ow * S <= last.
    *lo = before <= 0 ? 0 : (before + s_ - 1) / s_;
    *hi = last < 0 ? 0 : std::min(wo_, last / s_ + 1);
    if (*hi < *lo) *hi = *lo;
  }

  // The im2col matrix of one sample `x` [C, H, W]: x itself for a 1x1
  // stride-1 unpadded kernel, else col_ filled (zeros in the padding).
  const float* Columns(const float* x) {
    if (pointwise_) return x;
    const int64_t hw = ho_ * wo_;
    float* col = col_.data();
    for (int64_t c = 0; c < c_; ++c) {
      const float* plane = x + c * h_ * w_;
      for (int64_t ki = 0; ki < k_; ++ki) {
        for (int64_t kj = 0; kj < k_; ++kj) {
          float* row = col + ((c * k_ + ki) * k_ + kj) * hw;
          int64_t lo, hi;
          ValidColumns(kj, &lo, &hi);
          for (int64_t oh = 0; oh < ho_; ++oh) {
            const int64_t ih = oh * s_ - p_ + ki;
            float* dst = row + oh * wo_;
            if (ih < 0 || ih >= h_) {
              std::fill(dst, dst + wo_, 0.0f);
              continue;
            }
            std::fill(dst, dst + lo, 0.0f);
            std::fill(dst + hi, dst + wo_, 0.0f);
            const float* src = plane + ih * w_ + lo * s_ - p_ + kj;
            if (s_ == 1) {
              std::copy(src, src + (hi - lo), dst + lo);
            } else {
              for (int64_t j = 0; j < hi - lo; ++j) dst[lo + j] = src[j * s_];
            }
          }
        }
      }
    }
    return col;
  }

  // dx [C, H, W] = sum over receptive fields of dcol (the adjoint of
  // Columns).
  void Col2Im(const float* dcol, float* dx) const {
    const int64_t hw = ho_ * wo_;
    std::fill(dx, dx + c_ * h_ * w_, 0.0f);
    for (int64_t c = 0; c < c_; ++c) {
      float* plane = dx + c * h_ * w_;
      for (int64_t ki = 0; ki < k_; ++ki) {
        for (int64_t kj = 0; kj < k_; ++kj) {
          const float* row = dcol + ((c * k_ + ki) * k_ + kj) * hw;
          int64_t lo, hi;
          ValidColumns(kj, &lo, &hi);
          for (int64_t oh = 0; oh < ho_; ++oh) {
            const int64_t ih = oh * s_ - p_ + ki;
            if (ih < 0 || ih >= h_) continue;
            const float* src = row + oh * wo_ + lo;
            float* dst = plane + ih * w_ + lo * s_ - p_ + kj;
            if (s_ == 1) {
              for (int64_t j = 0; j < hi - lo; ++j) dst[j] += src[j];
            } else {
              for (int64_t j = 0; j < hi - lo; ++j) dst[j * s_] += src[j];
            }
          }
        }
      }
    }
  }

  int64_t f_, k_, s_, p_;
  int64_t c_ = 0, h_ = 0, w_ = 0, ho_ = 0, wo_ = 0, ckk_ = 0;
  bool pointwise_ = false;
  Tensor weight_, weight_grad_, bias_, bias_grad_;
  Tensor col_, dcol_;  // One sample's im2col matrix and its gradient.
  const Tensor* in_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewConv2D(const LayerSpec& spec) {
  if (spec.filters <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("filters must be positive, got ", spec.filters));
  }
  if (spec.kernel <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kernel must be positive, got ", spec.kernel));
  }
  if (spec.stride <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stride must be positive, got ", spec.stride));
  }
  // Padding >= kernel would only add outputs that see nothing but zeros.
  if (spec.padding < 0 || spec.padding >= spec.kernel) {
    return absl::InvalidArgumentError(
        absl::StrCat("padding must be in [0, kernel), got ", spec.padding,
                     " for kernel ", spec.kernel));
  }
  return std::unique_ptr<Layer>(
      new Conv2D(spec.filters, spec.kernel, spec.stride, spec.padding));
}

}  // namespace nnlab

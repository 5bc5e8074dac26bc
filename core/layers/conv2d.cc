// 2-D convolution (cross-correlation), NCHW, on one of two paths:
// oneDNN's convolution primitives (core/kernels/onednn_conv.h), or im2col +
// GEMM (Chellapilla et al. 2006): per sample, col [C*K*K, Ho*Wo] holds the
// receptive fields and y = W col + b with W [F, C*K*K]. Either way the
// batch is split into one contiguous part per BLAS thread.
// N = batch, C = input channels, H/W = input size, F = filters, K = kernel,
// Ho/Wo = output size, P = padding, S = stride.
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernels/blas.h"
#include "core/kernels/onednn_conv.h"
#include "core/kernels/parallel.h"
#include "core/kernels/vec_sum.h"
#include "core/layers/conv_chain.h"
#include "core/layers/init.h"
#include "core/layers/layer_factories.h"

namespace nnlab {
namespace {

class Conv2D : public Layer {
 public:
  Conv2D(int64_t filters, int64_t kernel, int64_t stride, int64_t padding)
      : f_(filters), k_(kernel), s_(stride), p_(padding) {}

  absl::string_view kind() const override { return "conv2d"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    // Padding >= kernel would only add outputs that see nothing but zeros.
    // Checked here rather than by the factory, so that Cost still knows
    // what such a spec asks for.
    if (p_ >= k_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "padding must be in [0, kernel), got ", p_, " for kernel ", k_));
    }
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

  // W [F, C, K, K] and b [F]. The buffer is the largest per-sample one of
  // the path set now (NNLAB_CONV): the output [F, Ho, Wo], im2col's matrix
  // [C*K*K, Ho*Wo], and on oneDNN its blocked copies of the input and the
  // output (channels padded to 16: nChw16c, the widest blocking it picks;
  // for a few-channel input that can exceed im2col's matrix: its forward
  // reads NCHW, but its input gradient may be blocked). On oneDNN the
  // im2col matrix still counts: im2col runs any batch size oneDNN
  // refuses, and oneDNN's own GEMM-based convolution keeps such a matrix in
  // its scratchpad. Sizes follow the formula even where OutputShape
  // refuses the padding or the kernel (at least 1).
  LayerCost Cost(const Shape& in) const override {
    LayerCost cost;
    const int64_t c = in.size() == 3 ? in[0] : CostElements(in);
    const int64_t ckk = CostMul(c, CostMul(k_, k_));
    cost.params = CostAdd(CostMul(f_, ckk), f_);
    if (in.size() == 3) {
      auto size = [&](int64_t d) {
        return std::max<int64_t>(1, (CostAdd(d, CostMul(2, p_)) - k_) / s_ + 1);
      };
      const int64_t hw = CostMul(size(in[1]), size(in[2]));
      cost.buffer_floats = std::max(CostMul(f_, hw), CostMul(ckk, hw));
      if (CurrentConvPath() != ConvPath::kIm2col) {
        auto padded = [](int64_t channels) {
          return CostMul(CostAdd(channels, 15) / 16, 16);
        };
        cost.buffer_floats = std::max(
            {cost.buffer_floats, CostMul(padded(c), CostMul(in[1], in[2])),
             CostMul(padded(f_), hw)});
      }
    }
    return cost;
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    c_ = in[0];
    h_ = in[1];
    w_ = in[2];
    ho_ = (h_ + 2 * p_ - k_) / s_ + 1;
    wo_ = (w_ + 2 * p_ - k_) / s_ + 1;
    ckk_ = c_ * k_ * k_;
    pointwise_ = k_ == 1 && s_ == 1 && p_ == 0;
    // "Same" stride-1 convolutions: the input gradient is itself a
    // same-size convolution of dy with the flipped, transposed kernel, so
    // it reuses im2col + one GEMM instead of GEMM + col2im.
    same_ =
        s_ == 1 && ho_ == h_ && wo_ == w_ && 2 * p_ == k_ - 1 && !pointwise_;
    weight_ = Tensor({f_, c_, k_, k_});
    weight_grad_ = Tensor({f_, c_, k_, k_});
    bias_ = Tensor({f_});
    bias_grad_ = Tensor({f_});
    InitWeights(init, ckk_, f_ * k_ * k_, rng, &weight_);
    onednn_ = UseOneDnn();
    if (same_) flipped_ = Tensor({c_, f_, k_, k_});
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = in.dim(0);
    in_ = &in;
    out->Resize({n, f_, ho_, wo_});
    const int parts = Prepare(n);
    RunParts(parts, n, [&](int part, int64_t lo, int64_t hi) {
      if (OneDnnConv* conv = OneDnnFor(part, hi - lo)) {
        conv->Forward(in.data() + lo * c_ * h_ * w_, weight_.data(),
                      bias_.data(), out->data() + lo * f_ * ho_ * wo_);
      } else {
        ForwardSamples(part, lo, hi, in.data(), out->data());
      }
    });
  }

  // dW += dy col^T, db += sum dy, dcol = W^T dy scattered back by col2im.
  // Samples are split into parts (one per BLAS thread); each part sums its
  // dW and db separately and the parts are added in order afterwards.
  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int64_t n = grad_out.dim(0);
    if (grad_in != nullptr) grad_in->Resize(in_->shape());
    if (same_ && grad_in != nullptr) {
      // flipped[c, f, i, j] = W[f, c, K-1-i, K-1-j].
      const int64_t kk = k_ * k_;
      for (int64_t f = 0; f < f_; ++f) {
        for (int64_t c = 0; c < c_; ++c) {
          const float* src = weight_.data() + (f * c_ + c) * kk;
          float* dst = flipped_.data() + (c * f_ + f) * kk;
          for (int64_t t = 0; t < kk; ++t) dst[t] = src[kk - 1 - t];
        }
      }
    }
    const int parts = Prepare(n);
    float* dx = grad_in != nullptr ? grad_in->data() : nullptr;
    RunParts(parts, n, [&](int part, int64_t lo, int64_t hi) {
      if (OneDnnConv* conv = OneDnnFor(part, hi - lo)) {
        const int64_t chw = c_ * h_ * w_, fhw = f_ * ho_ * wo_;
        const float* dy = grad_out.data() + lo * fhw;
        conv->Backward(in_->data() + lo * chw, dy, weight_.data(),
                       dx != nullptr ? dx + lo * chw : nullptr,
                       scratch_[part].dw.data(), scratch_[part].db.data());
      } else {
        BackwardSamples(part, lo, hi, grad_out.data(), dx);
      }
    });
    const int64_t wsize = f_ * ckk_;
    for (int part = 0; part < parts; ++part) {
      const float* dw = scratch_[part].dw.data();
      const float* db = scratch_[part].db.data();
      float* gw = weight_grad_.data();
      for (int64_t i = 0; i < wsize; ++i) gw[i] += dw[i];
      for (int64_t f = 0; f < f_; ++f) bias_grad_[f] += db[f];
    }
  }

  bool AppendToConvChain(ConvChain* chain) override {
    if (!onednn_) return false;
    chain->AddConv({0, c_, h_, w_, f_, k_, s_, p_, ho_, wo_}, &weight_, &bias_);
    return true;
  }

  std::vector<Param> Params() override {
    return {{name() + ".weight", &weight_, &weight_grad_},
            {name() + ".bias", &bias_, &bias_grad_}};
  }

 private:
  // Per-part buffers, sized on first use and reused every step.
  struct Scratch {
    Tensor col;   // im2col of one sample (of dy for the "same" gradient).
    Tensor dcol;  // Its gradient (col2im path).
    Tensor dw;    // This part's sum of dW, [F, C*K*K].
    Tensor db;    // This part's sum of db, [F].
    // oneDNN primitives by the part's batch size (the last batch of an
    // epoch, evaluation and prediction batches differ): built once each,
    // then reused; the oldest dropped beyond kMaxCachedSizes sizes, so
    // batch sizes chosen by clients cannot grow it without bound. Null
    // where oneDNN refused the size (im2col then runs it).
    std::vector<std::pair<int64_t, std::unique_ptr<OneDnnConv>>> onednn;
  };

  bool UseOneDnn() const {
    switch (CurrentConvPath()) {
      case ConvPath::kIm2col:
        return false;
      case ConvPath::kOneDnn:
      case ConvPath::kWinograd:
      case ConvPath::kAuto:
        break;
    }
    // oneDNN implements every float convolution; probed anyway, so that a
    // geometry it refused would run on im2col rather than fail later.
    return OneDnnConv::Create({1, c_, h_, w_, f_, k_, s_, p_, ho_, wo_}) !=
           nullptr;
  }

  static constexpr size_t kMaxCachedSizes = 4;

  // The oneDNN convolution for `part` running `n` samples, built on first
  // use; null on the im2col path or where oneDNN has no implementation.
  OneDnnConv* OneDnnFor(int part, int64_t n) {
    if (!onednn_) return nullptr;
    auto& cache = scratch_[part].onednn;
    for (auto& [size, conv] : cache) {
      if (size == n) return conv.get();
    }
    if (cache.size() >= kMaxCachedSizes) cache.erase(cache.begin());
    ConvGeometry g{n, c_, h_, w_, f_, k_, s_, p_, ho_, wo_};
    cache.emplace_back(n, OneDnnConv::Create(g));
    return cache.back().second.get();
  }

  // The im2col path's buffers for `part` (sized by Prepare on that path;
  // here when oneDNN refused one batch size).
  void Im2colBuffers(int part) {
    const int64_t hw = ho_ * wo_;
    Scratch& s = scratch_[part];
    if (!pointwise_) s.col.Resize({std::max(ckk_, f_ * k_ * k_), hw});
    if (!pointwise_ && !same_) s.dcol.Resize({ckk_, hw});
  }

  // Number of parts for a batch of n (BLAS threads, at most n) and their
  // scratch.
  int Prepare(int64_t n) {
    const int parts = static_cast<int>(
        std::max<int64_t>(1, std::min<int64_t>(BlasThreads(), n)));
    if (static_cast<int>(scratch_.size()) < parts) scratch_.resize(parts);
    for (int part = 0; part < parts; ++part) {
      Scratch& s = scratch_[part];
      if (!onednn_) Im2colBuffers(part);
      s.dw.Resize({f_, ckk_});
      s.db.Resize({f_});
    }
    return parts;
  }

  // Runs fn(part, lo, hi) over contiguous sample ranges, in parallel
  // (each product inside runs single-threaded: it is too small to split).
  template <typename Fn>
  void RunParts(int parts, int64_t n, const Fn& fn) {
    ParallelFor(parts, [&](int part) {
      fn(part, n * part / parts, n * (part + 1) / parts);
    });
  }

  void ForwardSamples(int part, int64_t lo, int64_t hi, const float* x,
                      float* y_all) {
    if (onednn_) Im2colBuffers(part);
    const int64_t hw = ho_ * wo_;
    float* col_buf = pointwise_ ? nullptr : scratch_[part].col.data();
    for (int64_t i = lo; i < hi; ++i) {
      const float* xi = x + i * c_ * h_ * w_;
      const float* col = pointwise_ ? xi : col_buf;
      if (!pointwise_) Columns(xi, c_, col_buf);
      float* y = y_all + i * f_ * hw;
      for (int64_t f = 0; f < f_; ++f) {
        std::fill(y + f * hw, y + (f + 1) * hw, bias_[f]);
      }
      Gemm(false, false, f_, hw, ckk_, 1.0f, weight_.data(), ckk_, col, hw,
           1.0f, y, hw);
    }
  }

  void BackwardSamples(int part, int64_t lo, int64_t hi, const float* dy_all,
                       float* dx_all) {
    if (onednn_) Im2colBuffers(part);
    const int64_t hw = ho_ * wo_, chw = c_ * h_ * w_;
    Scratch& s = scratch_[part];
    float* col_buf = pointwise_ ? nullptr : s.col.data();
    s.dw.SetZero();
    s.db.SetZero();
    for (int64_t i = lo; i < hi; ++i) {
      const float* dy = dy_all + i * f_ * hw;
      const float* xi = in_->data() + i * chw;
      const float* col = pointwise_ ? xi : col_buf;
      if (!pointwise_) Columns(xi, c_, col_buf);
      Gemm(false, true, f_, ckk_, hw, 1.0f, dy, hw, col, hw, 1.0f, s.dw.data(),
           ckk_);
      for (int64_t f = 0; f < f_; ++f) s.db[f] += VecSum(dy + f * hw, hw);
      if (dx_all == nullptr) continue;
      float* dx = dx_all + i * chw;
      if (pointwise_) {
        Gemm(true, false, ckk_, hw, f_, 1.0f, weight_.data(), ckk_, dy, hw,
             0.0f, dx, hw);
      } else if (same_) {
        // dx = flipped [C, F*K*K] x im2col(dy) [F*K*K, H*W].
        Columns(dy, f_, col_buf);
        Gemm(false, false, c_, hw, f_ * k_ * k_, 1.0f, flipped_.data(),
             f_ * k_ * k_, col_buf, hw, 0.0f, dx, hw);
      } else {
        Gemm(true, false, ckk_, hw, f_, 1.0f, weight_.data(), ckk_, dy, hw,
             0.0f, s.dcol.data(), hw);
        Col2Im(s.dcol.data(), dx);
      }
    }
  }

  // Output columns [lo, hi) of kernel column kj whose input column
  // ow * S - P + kj lies inside [0, W); the rest read zero padding.
  void ValidColumns(int64_t kj, int64_t* lo, int64_t* hi) const {
    const int64_t before = p_ - kj;         // Need ow * S >= before.
    const int64_t last = w_ - 1 + p_ - kj;  // Need ow * S <= last.
    *lo = before <= 0 ? 0 : (before + s_ - 1) / s_;
    *hi = last < 0 ? 0 : std::min(wo_, last / s_ + 1);
    if (*hi < *lo) *hi = *lo;
  }

  // The im2col matrix [channels*K*K, Ho*Wo] of one sample `x`
  // [channels, H, W] into `col` (zeros in the padding). Plain loops, not
  // std::copy/fill: rows are a few dozen floats, where a library call
  // costs as much as the copy.
  void Columns(const float* x, int64_t channels, float* col) const {
    const int64_t hw = ho_ * wo_;
    if (same_) {
      // Row (c, ki, kj) is the plane shifted by (ki - P) rows and (kj - P)
      // columns: one contiguous copy, then zeros where the shift leaves
      // the plane (top/bottom rows, wrapped-around edge columns).
      for (int64_t c = 0; c < channels; ++c) {
        const float* plane = x + c * hw;
        for (int64_t ki = 0; ki < k_; ++ki) {
          for (int64_t kj = 0; kj < k_; ++kj) {
            float* row = col + ((c * k_ + ki) * k_ + kj) * hw;
            const int64_t shift = (ki - p_) * w_ + (kj - p_);
            const int64_t first = std::max<int64_t>(0, -shift);
            const int64_t last = std::min<int64_t>(hw, hw - shift);
            for (int64_t j = 0; j < first; ++j) row[j] = 0.0f;
            const float* src = plane + shift;
            for (int64_t j = first; j < last; ++j) row[j] = src[j];
            for (int64_t j = last; j < hw; ++j) row[j] = 0.0f;
            // Columns whose shifted input column falls outside [0, W).
            // Column-major walk: a strided store per row, where a row-wise
            // loop would become a memset call for one or two floats.
            const int64_t dc = kj - p_;
            for (int64_t ow = 0; ow < -dc; ++ow) {
              for (int64_t oh = 0; oh < ho_; ++oh) row[oh * wo_ + ow] = 0.0f;
            }
            for (int64_t ow = wo_ - dc; ow < wo_; ++ow) {
              for (int64_t oh = 0; oh < ho_; ++oh) row[oh * wo_ + ow] = 0.0f;
            }
          }
        }
      }
      return;
    }
    for (int64_t c = 0; c < channels; ++c) {
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
              for (int64_t j = 0; j < wo_; ++j) dst[j] = 0.0f;
              continue;
            }
            for (int64_t j = 0; j < lo; ++j) dst[j] = 0.0f;
            for (int64_t j = hi; j < wo_; ++j) dst[j] = 0.0f;
            const float* src = plane + ih * w_ + lo * s_ - p_ + kj;
            if (s_ == 1) {
              for (int64_t j = 0; j < hi - lo; ++j) dst[lo + j] = src[j];
            } else {
              for (int64_t j = 0; j < hi - lo; ++j) dst[lo + j] = src[j * s_];
            }
          }
        }
      }
    }
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
  bool same_ = false;
  bool onednn_ = false;  // Convolutions on oneDNN (else im2col + GEMM).
  Tensor weight_, weight_grad_, bias_, bias_grad_;
  Tensor flipped_;  // [C, F, K, K] for the "same" input gradient.
  std::vector<Scratch> scratch_;
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
  // padding < kernel is checked with the shapes (Conv2D::OutputShape).
  if (spec.padding < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("padding must be in [0, kernel), got ", spec.padding,
                     " for kernel ", spec.kernel));
  }
  return std::unique_ptr<Layer>(
      new Conv2D(spec.filters, spec.kernel, spec.stride, spec.padding));
}

}  // namespace nnlab

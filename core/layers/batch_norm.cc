// Batch normalization (Ioffe & Szegedy 2015): xhat = (x - mu_B) /
// sqrt(var_B + eps), y = gamma * xhat + beta, per feature of [F] inputs or
// per channel of [C, H, W] inputs; running averages of mu and var (momentum)
// replace the batch statistics in evaluation.
// N = batch, C = features/channels, S = spatial size (1 for dense), M = N*S.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernels/blas.h"
#include "core/kernels/parallel.h"
#include "core/kernels/vec_math.h"
#include "core/layers/conv_chain.h"
#include "core/layers/layer_factories.h"

namespace nnlab {
namespace {

class BatchNorm : public Layer {
 public:
  BatchNorm(float momentum, float epsilon)
      : momentum_(momentum), epsilon_(epsilon) {}

  absl::string_view kind() const override { return "batch_norm"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    if (in.size() != 1 && in.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expects [features] or [channels, height, width] per sample, got ",
          ShapeToString(in)));
    }
    return in;
  }

  // gamma and beta, one each per channel (the running statistics are
  // Buffers, not parameters).
  LayerCost Cost(const Shape& in) const override {
    LayerCost cost = Layer::Cost(in);
    const int64_t channels = in.size() == 3 ? in[0] : CostElements(in);
    cost.params = CostMul(2, channels);
    return cost;
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    channels_ = in[0];
    spatial_ = in.size() == 3 ? in[1] * in[2] : 1;
    gamma_ = Tensor({channels_});
    gamma_.Fill(1.0f);
    gamma_grad_ = Tensor({channels_});
    beta_ = Tensor({channels_});
    beta_grad_ = Tensor({channels_});
    running_mean_ = Tensor({channels_});
    running_var_ = Tensor({channels_});
    running_var_.Fill(1.0f);
    inv_std_ = Tensor({channels_});
    acc_a_.assign(channels_, 0.0);
    acc_b_.assign(channels_, 0.0);
    mean_ = Tensor({channels_});
    scale_ = Tensor({channels_});
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = in.dim(0), c_n = channels_, s_n = spatial_;
    const int64_t m = n * s_n;
    out->Resize(in.shape());
    train_ = mode == Mode::kTrain;
    const float* x = in.data();
    float* y = out->data();
    // xhat is not stored: Backward recomputes it from the input (which
    // stays alive until then), the same float operations giving the same
    // bits. That saves a write of the whole activation here and its memory
    // (14 MB for resnet-small's batch of 64, 1 MB per layer of the wide
    // MLP's 256).
    in_ = &in;
    if (s_n == 1) {
      ForwardFeatures(x, n, y);
      return;
    }
    ForChannels(n * c_n * s_n, [&](int64_t c) {
      const NormChannel ch{n, c_n * s_n, s_n};
      double mean, var;
      if (train_) {
        VecNormStats(x + c * s_n, ch, &mean, &var);
        UpdateRunningStats(c, mean, var, m);
      } else {
        mean = running_mean_[c];
        var = running_var_[c];
      }
      const float inv_std = float(1.0 / std::sqrt(var + epsilon_));
      const float mu = float(mean);
      inv_std_[c] = inv_std;
      mean_[c] = mu;
      VecNormApply(x + c * s_n, ch, mu, inv_std, gamma_[c], beta_[c],
                   y + c * s_n);
    });
  }

  // dgamma = sum dy * xhat, dbeta = sum dy; in training (batch statistics)
  // dx = gamma * inv_std / M * (M dy - sum dy - xhat * sum dy * xhat),
  // in evaluation dx = gamma * inv_std * dy.
  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int64_t n = grad_out.dim(0), c_n = channels_, s_n = spatial_;
    const double m = double(n * s_n);
    const float* dy = grad_out.data();
    float* dx = nullptr;
    if (grad_in != nullptr) {
      grad_in->Resize(grad_out.shape());
      dx = grad_in->data();
    }
    if (s_n == 1) {
      BackwardFeatures(dy, in_->data(), n, dx);
      return;
    }
    const float* x = in_->data();
    ForChannels(n * c_n * s_n, [&](int64_t c) {
      const NormChannel ch{n, c_n * s_n, s_n};
      const int64_t off = c * s_n;
      const float mu = mean_[c], inv_std = inv_std_[c];
      double sum_dy, sum_dy_xh;
      VecNormGradSums(dy + off, x + off, ch, mu, inv_std, &sum_dy, &sum_dy_xh);
      gamma_grad_[c] += float(sum_dy_xh);
      beta_grad_[c] += float(sum_dy);
      if (dx == nullptr) return;
      const float scale = gamma_[c] * inv_std;
      if (!train_) {
        for (int64_t i = 0; i < n; ++i) {
          const int64_t row = (i * c_n + c) * s_n;
          for (int64_t k = 0; k < s_n; ++k) dx[row + k] = scale * dy[row + k];
        }
        return;
      }
      VecNormGradInput(dy + off, x + off, ch, mu, inv_std, scale,
                       float(sum_dy / m), float(sum_dy_xh / m), dx + off);
    });
  }

  bool AppendToConvChain(ConvChain* chain) override {
    return spatial_ > 1 && chain->FoldBatchNorm(&gamma_, &beta_, &running_mean_,
                                                &running_var_, epsilon_);
  }

  std::vector<Param> Params() override {
    return {{name() + ".gamma", &gamma_, &gamma_grad_},
            {name() + ".beta", &beta_, &beta_grad_}};
  }

  std::vector<std::pair<std::string, Tensor*>> Buffers() override {
    return {{name() + ".running_mean", &running_mean_},
            {name() + ".running_var", &running_var_}};
  }

 private:
  // Below this many elements in all a split costs more than it saves.
  static constexpr int64_t kMinParallelElements = 1 << 15;

  // Runs fn(c) for every channel, in contiguous channel ranges over the
  // BLAS threads when the tensor has >= kMinParallelElements values.
  // Channels are independent (each writes only its own statistics,
  // gradients and outputs), so the bits do not depend on the split.
  template <typename Fn>
  void ForChannels(int64_t elements, const Fn& fn) {
    const int64_t c_n = channels_;
    const int parts =
        elements >= kMinParallelElements
            ? static_cast<int>(std::min<int64_t>(BlasThreads(), c_n))
            : 1;
    if (parts <= 1) {
      for (int64_t c = 0; c < c_n; ++c) fn(c);
      return;
    }
    ParallelFor(parts, [&](int part) {
      for (int64_t c = c_n * part / parts; c < c_n * (part + 1) / parts; ++c) {
        fn(c);
      }
    });
  }

  // Folds channel c's batch statistics over m values into the running
  // ones; the running variance is the unbiased estimate, as in the paper.
  void UpdateRunningStats(int64_t c, double mean, double var, int64_t m) {
    const double unbiased = m > 1 ? var * double(m) / double(m - 1) : var;
    running_mean_[c] =
        float(momentum_ * running_mean_[c] + (1.0 - momentum_) * mean);
    running_var_[c] =
        float(momentum_ * running_var_[c] + (1.0 - momentum_) * unbiased);
  }

  // Dense features ([N, C], S = 1): the same arithmetic as the per-channel
  // loops above, in the same order per channel, but walking the batch row
  // by row with per-channel accumulators, so memory is read contiguously
  // and the loops vectorise across channels (a column walk of [N, C]
  // touches a new cache line per element).
  void ForwardFeatures(const float* x, int64_t n, float* y) {
    const int64_t c_n = channels_;
    double* sum = acc_a_.data();
    double* sum2 = acc_b_.data();
    float* mu = mean_.data();
    float* inv = inv_std_.data();
    if (train_) {
      std::fill(sum, sum + c_n, 0.0);
      std::fill(sum2, sum2 + c_n, 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * c_n;
        for (int64_t c = 0; c < c_n; ++c) sum[c] += row[c];
      }
      for (int64_t c = 0; c < c_n; ++c) mu[c] = float(sum[c] / double(n));
      for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * c_n;
        for (int64_t c = 0; c < c_n; ++c) {
          const float d = row[c] - mu[c];
          sum2[c] += d * d;
        }
      }
    }
    for (int64_t c = 0; c < c_n; ++c) {
      double mean, var;
      if (train_) {
        mean = sum[c] / double(n);
        var = sum2[c] / double(n);
        UpdateRunningStats(c, mean, var, n);
      } else {
        mean = running_mean_[c];
        var = running_var_[c];
      }
      inv[c] = float(1.0 / std::sqrt(var + epsilon_));
      mu[c] = float(mean);
    }
    const float* g = gamma_.data();
    const float* b = beta_.data();
    // Rows split over the threads: each value is computed alone, so the
    // bits do not depend on the split.
    ForRows(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const float* row = x + i * c_n;
        float* y_row = y + i * c_n;
        for (int64_t c = 0; c < c_n; ++c) {
          const float v = (row[c] - mu[c]) * inv[c];
          y_row[c] = g[c] * v + b[c];
        }
      }
    });
  }

  // Runs fn(lo, hi) over contiguous ranges of the n rows of a [n, F]
  // tensor, one per BLAS thread when it has >= kMinParallelElements values.
  template <typename Fn>
  void ForRows(int64_t n, const Fn& fn) {
    const int parts =
        n * channels_ >= kMinParallelElements
            ? static_cast<int>(std::min<int64_t>(BlasThreads(), n))
            : 1;
    if (parts <= 1) {
      fn(int64_t{0}, n);
      return;
    }
    ParallelFor(
        parts, [&](int part) { fn(n * part / parts, n * (part + 1) / parts); });
  }

  // xhat is recomputed from x as ForwardFeatures computed it.
  void BackwardFeatures(const float* dy, const float* x, int64_t n, float* dx) {
    const int64_t c_n = channels_;
    const float* mu = mean_.data();
    const float* inv = inv_std_.data();
    double* sum_dy = acc_a_.data();
    double* sum_dy_xh = acc_b_.data();
    std::fill(sum_dy, sum_dy + c_n, 0.0);
    std::fill(sum_dy_xh, sum_dy_xh + c_n, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      const float* dy_row = dy + i * c_n;
      const float* x_row = x + i * c_n;
      for (int64_t c = 0; c < c_n; ++c) {
        const float xh = (x_row[c] - mu[c]) * inv[c];
        sum_dy[c] += dy_row[c];
        sum_dy_xh[c] += dy_row[c] * xh;
      }
    }
    float* scale = scale_.data();  // gamma * inv_std per channel.
    for (int64_t c = 0; c < c_n; ++c) {
      gamma_grad_[c] += float(sum_dy_xh[c]);
      beta_grad_[c] += float(sum_dy[c]);
      scale[c] = gamma_[c] * inv_std_[c];
    }
    if (dx == nullptr) return;
    if (!train_) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t c = 0; c < c_n; ++c) {
          dx[i * c_n + c] = scale[c] * dy[i * c_n + c];
        }
      }
      return;
    }
    const double m = double(n);
    for (int64_t c = 0; c < c_n; ++c) {
      // Kept as floats, like the per-channel path.
      acc_a_[c] = float(sum_dy[c] / m);
      acc_b_[c] = float(sum_dy_xh[c] / m);
    }
    for (int64_t i = 0; i < n; ++i) {
      const float* dy_row = dy + i * c_n;
      const float* x_row = x + i * c_n;
      float* dx_row = dx + i * c_n;
      for (int64_t c = 0; c < c_n; ++c) {
        const float xh = (x_row[c] - mu[c]) * inv[c];
        dx_row[c] =
            scale[c] * (dy_row[c] - float(acc_a_[c]) - xh * float(acc_b_[c]));
      }
    }
  }

  double momentum_;
  double epsilon_;
  int64_t channels_ = 0;
  int64_t spatial_ = 1;
  Tensor gamma_, gamma_grad_, beta_, beta_grad_;
  Tensor running_mean_, running_var_;
  Tensor inv_std_;  // 1 / sqrt(var + eps) per channel, last Forward.
  // The last Forward's input (Backward recomputes xhat from it, with mu
  // per channel in mean_).
  const Tensor* in_ = nullptr;
  bool train_ = false;
  // Per-channel scratch of the dense-feature path, sized at Init.
  std::vector<double> acc_a_, acc_b_;
  Tensor mean_;
  Tensor scale_;  // gamma * inv_std per channel (dense-feature Backward).
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewBatchNorm(const LayerSpec& spec) {
  if (!(spec.momentum >= 0.0f && spec.momentum < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum must be in [0, 1), got ", spec.momentum));
  }
  if (!(spec.epsilon > 0.0f) || !std::isfinite(spec.epsilon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("epsilon must be positive, got ", spec.epsilon));
  }
  return std::unique_ptr<Layer>(new BatchNorm(spec.momentum, spec.epsilon));
}

}  // namespace nnlab

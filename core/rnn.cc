// Elman RNN (Elman 1990), the lecture's h_t = tanh(W_hh h_{t-1} + W_hx x_t
// + b), trained by backprop through time (Werbos 1990), optionally
// truncated (recurrent.h). The output y_t = W_s h_t is a following
// "time_dense" (many-to-many) or "dense" (many-to-one) layer.
// N = batch, T = steps, F = features, H = units; time-major buffers.
#include <algorithm>
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/blas.h"
#include "core/init.h"
#include "core/layers.h"
#include "core/recurrent.h"

namespace nnlab {
namespace {

class Rnn : public RecurrentLayer {
 public:
  Rnn(int64_t units, bool return_sequences, int64_t bptt_window)
      : RecurrentLayer(units, return_sequences, bptt_window, /*gates=*/1,
                       /*state_count=*/1) {}

  absl::string_view kind() const override { return "rnn"; }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    f_ = in[1];
    const int64_t h = units_;
    w_ih_ = Tensor({h, f_});
    w_ih_grad_ = Tensor({h, f_});
    w_hh_ = Tensor({h, h});
    w_hh_grad_ = Tensor({h, h});
    bias_ = Tensor({h});
    bias_grad_ = Tensor({h});
    InitWeights(init, f_, h, rng, &w_ih_);
    InitWeights(init, h, h, rng, &w_hh_);
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = in.dim(0), t = in.dim(1), h = units_;
    n_ = n;
    t_ = t;
    xs_.Resize({t, n, f_});
    BatchToTimeMajor(in.data(), n, t, f_, xs_.data());
    // hs_[0] is the initial state, hs_[s + 1] = h_s.
    hs_.Resize({t + 1, n, h});
    LoadInitialState(n, {hs_.data()});
    float* z = hs_.data() + n * h;
    // All steps' input terms at once: Z = X W_ih^T + b.
    for (int64_t r = 0; r < t * n; ++r) {
      std::copy(bias_.data(), bias_.data() + h, z + r * h);
    }
    Gemm(false, true, t * n, h, f_, 1.0f, xs_.data(), f_, w_ih_.data(), f_,
         1.0f, z, h);
    for (int64_t s = 0; s < t; ++s) {
      const float* prev = hs_.data() + s * n * h;
      float* cur = hs_.data() + (s + 1) * n * h;
      Gemm(false, true, n, h, h, 1.0f, prev, h, w_hh_.data(), h, 1.0f, cur, h);
      TanhArray(cur, cur, n * h);
    }
    SaveFinalState(n, {hs_.data() + t * n * h});
    if (return_sequences_) {
      out->Resize({n, t, h});
      TimeToBatchMajor(hs_.data() + n * h, n, t, h, out->data());
    } else {
      out->Resize({n, h});
      const float* last = hs_.data() + t * n * h;
      std::copy(last, last + n * h, out->data());
    }
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int64_t n = n_, t = t_, h = units_;
    if (return_sequences_) {
      gs_.Resize({t, n, h});
      BatchToTimeMajor(grad_out.data(), n, t, h, gs_.data());
    }
    dz_.Resize({t, n, h});
    dh_next_.Resize({n, h});
    dh_next_.SetZero();
    grad_norms_.assign(t, 0.0);
    for (int64_t s = t - 1; s >= 0; --s) {
      float* dz = dz_.data() + s * n * h;
      const float* hcur = hs_.data() + (s + 1) * n * h;
      const float* dh_next = dh_next_.data();
      // dE/dh_s = output gradient at s + gradient from step s+1.
      const float* g = return_sequences_ ? gs_.data() + s * n * h
                       : s == t - 1      ? grad_out.data()
                                         : nullptr;
      double norm2 = 0;
      for (int64_t i = 0; i < n * h; ++i) {
        const float dh = (g != nullptr ? g[i] : 0.0f) + dh_next[i];
        norm2 += double(dh) * dh;
        dz[i] = dh * (1.0f - hcur[i] * hcur[i]);  // tanh' = 1 - h^2.
      }
      grad_norms_[s] = std::sqrt(norm2);
      if (s > 0 && !CutBefore(s)) {
        Gemm(false, false, n, h, h, 1.0f, dz, h, w_hh_.data(), h, 0.0f,
             dh_next_.data(), h);
      } else {
        dh_next_.SetZero();
      }
    }
    // dW_ih += dZ^T X, dW_hh += dZ^T H_prev, db += sum dZ, over all steps.
    Gemm(true, false, h, f_, t * n, 1.0f, dz_.data(), h, xs_.data(), f_, 1.0f,
         w_ih_grad_.data(), f_);
    Gemm(true, false, h, h, t * n, 1.0f, dz_.data(), h, hs_.data(), h, 1.0f,
         w_hh_grad_.data(), h);
    float* db = bias_grad_.data();
    for (int64_t r = 0; r < t * n; ++r) {
      const float* row = dz_.data() + r * h;
      for (int64_t j = 0; j < h; ++j) db[j] += row[j];
    }
    if (grad_in != nullptr) {
      dxs_.Resize({t, n, f_});
      Gemm(false, false, t * n, f_, h, 1.0f, dz_.data(), h, w_ih_.data(), f_,
           0.0f, dxs_.data(), f_);
      grad_in->Resize({n, t, f_});
      TimeToBatchMajor(dxs_.data(), n, t, f_, grad_in->data());
    }
  }

  std::vector<Param> Params() override {
    return {{name() + ".weight_ih", &w_ih_, &w_ih_grad_},
            {name() + ".weight_hh", &w_hh_, &w_hh_grad_},
            {name() + ".bias", &bias_, &bias_grad_}};
  }

 private:
  int64_t f_ = 0, n_ = 0, t_ = 0;
  Tensor w_ih_, w_ih_grad_, w_hh_, w_hh_grad_, bias_, bias_grad_;
  // Per-sequence buffers, reused across steps: inputs [T, N, F], states
  // [T+1, N, H], output gradients [T, N, H], pre-activation gradients
  // [T, N, H], dE/dh from the next step [N, H], input gradients [T, N, F].
  Tensor xs_, hs_, gs_, dz_, dh_next_, dxs_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewRnn(const LayerSpec& spec) {
  if (spec.units <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("units (hidden size) must be positive, got ", spec.units));
  }
  if (spec.bptt_window < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bptt_window must be >= 0 (0 = full BPTT), got ", spec.bptt_window));
  }
  return std::unique_ptr<Layer>(
      new Rnn(spec.units, spec.return_sequences, spec.bptt_window));
}

}  // namespace nnlab

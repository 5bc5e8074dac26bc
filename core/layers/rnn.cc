// Elman RNN (Elman 1990), the lecture's h_t = tanh(W_hh h_{t-1} + W_hx x_t
// + b), trained by backprop through time (Werbos 1990), optionally
// truncated (recurrent.h). The output y_t = W_s h_t is a following
// "time_dense" (many-to-many) or "dense" (many-to-one) layer.
// N = batch, T = steps, F = features, H = units; time-major buffers.
#include <algorithm>
#include <cmath>
#include <memory>

#include "core/kernels/blas.h"
#include "core/kernels/vec_math.h"
#include "core/layers/layer_factories.h"
#include "core/layers/recurrent.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

class Rnn : public RecurrentLayer {
 public:
  Rnn(int64_t units, bool return_sequences, int64_t bptt_window)
      : RecurrentLayer(units, return_sequences, bptt_window, /*gates=*/1,
                       /*state_count=*/1) {}

  absl::string_view kind() const override { return "rnn"; }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = in.dim(0), t = in.dim(1), h = units_;
    // hs_[0] is the initial state, hs_[s + 1] = h_s; the input terms of
    // every step go straight into hs_[1..T].
    hs_.Resize({t + 1, n, h});
    LoadInitialState(n, {hs_.data()});
    ProjectInputs(in, hs_.data() + n * h);
    ForBatchSlices(BatchParts(n, t), n, [this](int, int64_t lo, int64_t hi) {
      ForwardRows(lo, hi);
    });
    SaveFinalState(n, {hs_.data() + t * n * h});
    WriteOutput(out);
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int parts = BeginBackward(grad_out);
    ForBatchSlices(parts, n_, [&](int part, int64_t lo, int64_t hi) {
      BackwardRows(grad_out, part, lo, hi);
    });
    FinishBackward(grad_in);
  }

 private:
  // Every step of the forward pass for the sequences [lo, hi) of the batch.
  void ForwardRows(int64_t lo, int64_t hi) {
    const int64_t n = n_, t = t_, h = units_, rows = hi - lo;
    for (int64_t s = 0; s < t; ++s) {
      const float* prev = hs_.data() + (s * n + lo) * h;
      float* cur = hs_.data() + ((s + 1) * n + lo) * h;
      Gemm(false, true, rows, h, h, 1.0f, prev, h, w_hh_.data(), h, 1.0f, cur,
           h);
      VecTanh(cur, cur, rows * h);
    }
  }

  // Backprop through every step for the sequences [lo, hi) of the batch.
  void BackwardRows(const Tensor& grad_out, int part, int64_t lo, int64_t hi) {
    const int64_t n = n_, t = t_, h = units_, rows = hi - lo;
    float* dh_next = dh_next_.data() + lo * h;
    for (int64_t s = t - 1; s >= 0; --s) {
      float* dz = dz_.data() + (s * n + lo) * h;
      const float* hcur = hs_.data() + ((s + 1) * n + lo) * h;
      // dE/dh_s = output gradient at s + gradient from step s+1, in place
      // of the carry (its squares summed apart, so both loops vectorise).
      const float* g = OutputGrad(grad_out, s);
      if (g != nullptr) {
        g += lo * h;
        for (int64_t i = 0; i < rows * h; ++i) dh_next[i] += g[i];
      }
      StepNorm2(part, s) = VecSquaredNorm(dh_next, rows * h);
      for (int64_t i = 0; i < rows * h; ++i) {
        dz[i] = dh_next[i] * (1.0f - hcur[i] * hcur[i]);  // tanh' = 1 - h^2.
      }
      if (s > 0 && !CutBefore(s)) {
        Gemm(false, false, rows, h, h, 1.0f, dz, h, w_hh_.data(), h, 0.0f,
             dh_next, h);
      } else {
        std::fill(dh_next, dh_next + rows * h, 0.0f);
      }
    }
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewRnn(const LayerSpec& spec) {
  NNLAB_RETURN_IF_ERROR(ValidateRecurrentSpec(spec));
  return std::unique_ptr<Layer>(
      new Rnn(spec.units, spec.return_sequences, spec.bptt_window));
}

}  // namespace nnlab

// LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
// 2000), as the lecture writes it, z = W_ih x_t + W_hh h_{t-1} + b split
// into four blocks:
//   f_t = sigmoid(z_f), i_t = sigmoid(z_i), C~_t = tanh(z_g),
//   C_t = f_t * C_{t-1} + i_t * C~_t, o_t = sigmoid(z_o), h_t = o_t *
//   tanh(C_t).
// Weights are stacked in the order f, i, g (= C~), o: W_ih [4H, F],
// W_hh [4H, H], b [4H], with the forget block of b initialised to 1
// (Jozefowicz et al. 2015) so the cell remembers from the start.
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

class Lstm : public RecurrentLayer {
 public:
  Lstm(int64_t units, bool return_sequences, int64_t bptt_window)
      : RecurrentLayer(units, return_sequences, bptt_window, /*gates=*/4,
                       /*state_count=*/2) {}

  absl::string_view kind() const override { return "lstm"; }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    RecurrentLayer::Init(in, init, rng);
    std::fill(bias_.data(), bias_.data() + units_, 1.0f);  // Forget gate.
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = in.dim(0), t = in.dim(1), h = units_;
    // hs_/cs_[0] hold the initial state, [s + 1] the state after step s.
    hs_.Resize({t + 1, n, h});
    cs_.Resize({t + 1, n, h});
    tc_.Resize({t, n, h});
    gates_buf_.Resize({t, n, 4 * h});
    LoadInitialState(n, {hs_.data(), cs_.data()});
    ProjectInputs(in, gates_buf_.data());
    ForBatchSlices(BatchParts(n, t), n, [this](int, int64_t lo, int64_t hi) {
      ForwardRows(lo, hi);
    });
    SaveFinalState(n, {hs_.data() + t * n * h, cs_.data() + t * n * h});
    WriteOutput(out);
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int parts = BeginBackward(grad_out);
    dc_next_.Resize({n_, units_});
    dc_next_.SetZero();
    ForBatchSlices(parts, n_, [&](int part, int64_t lo, int64_t hi) {
      BackwardRows(grad_out, part, lo, hi);
    });
    FinishBackward(grad_in);
  }

 private:
  // Every step of the forward pass for the sequences [lo, hi) of the batch.
  void ForwardRows(int64_t lo, int64_t hi) {
    const int64_t n = n_, t = t_, h = units_, g4 = 4 * units_, rows = hi - lo;
    for (int64_t s = 0; s < t; ++s) {
      const int64_t at = s * n + lo;  // Row of this slice at step s.
      const float* h_prev = hs_.data() + at * h;
      const float* c_prev = cs_.data() + at * h;
      float* gs = gates_buf_.data() + at * g4;
      float* c = cs_.data() + (at + n) * h;
      float* hc = hs_.data() + (at + n) * h;
      float* tc = tc_.data() + at * h;
      Gemm(false, true, rows, g4, h, 1.0f, h_prev, h, w_hh_.data(), h, 1.0f, gs,
           g4);
      for (int64_t i = 0; i < rows; ++i) {
        float* row = gs + i * g4;  // Becomes the activated gates f, i, g, o.
        VecSigmoid(row, row, 2 * h);
        VecTanh(row + 2 * h, row + 2 * h, h);
        VecSigmoid(row + 3 * h, row + 3 * h, h);
        const float* fg = row;
        const float* ig = row + h;
        const float* gg = row + 2 * h;
        const int64_t k = i * h;
        for (int64_t j = 0; j < h; ++j) {
          c[k + j] = fg[j] * c_prev[k + j] + ig[j] * gg[j];
        }
      }
      VecTanh(c, tc, rows * h);
      for (int64_t i = 0; i < rows; ++i) {
        const float* og = gs + i * g4 + 3 * h;
        for (int64_t j = 0; j < h; ++j) hc[i * h + j] = og[j] * tc[i * h + j];
      }
    }
  }

  // One sequence's step backwards: from its activated gates a [4H], C_{t-1},
  // tanh(C_t) and dE/dh_t, the gates' pre-activation gradients d [4H], and
  // the cell-state carry dc (in: from step t+1; out: to step t-1). The
  // arrays never overlap; saying so lets the loop vectorise.
  static void GateGrads(const float* __restrict a,
                        const float* __restrict c_prev,
                        const float* __restrict tc, const float* __restrict dh,
                        int64_t h, float* __restrict dc_carry,
                        float* __restrict d) {
    for (int64_t j = 0; j < h; ++j) {
      const float fg = a[j], ig = a[h + j], gg = a[2 * h + j],
                  og = a[3 * h + j];
      // h = o tanh(C): dC gets dh o (1 - tanh^2 C) plus the carry.
      const float dc = dc_carry[j] + dh[j] * og * (1.0f - tc[j] * tc[j]);
      d[j] = dc * c_prev[j] * fg * (1.0f - fg);
      d[h + j] = dc * gg * ig * (1.0f - ig);
      d[2 * h + j] = dc * ig * (1.0f - gg * gg);
      d[3 * h + j] = dh[j] * tc[j] * og * (1.0f - og);
      dc_carry[j] = dc * fg;
    }
  }

  // Backprop through every step for the sequences [lo, hi) of the batch.
  void BackwardRows(const Tensor& grad_out, int part, int64_t lo, int64_t hi) {
    const int64_t n = n_, t = t_, h = units_, g4 = 4 * units_, rows = hi - lo;
    float* dc_next = dc_next_.data() + lo * h;
    float* dh_next = dh_next_.data() + lo * h;
    for (int64_t s = t - 1; s >= 0; --s) {
      const int64_t at = s * n + lo;
      const float* gates = gates_buf_.data() + at * g4;
      const float* c_prev = cs_.data() + at * h;
      const float* tc = tc_.data() + at * h;
      float* dz = dz_.data() + at * g4;
      // dE/dh_s (the output's gradient at s plus the carry from s + 1),
      // in place of the carry; summing its squares apart from the loop
      // below lets that loop vectorise.
      const float* g = OutputGrad(grad_out, s);
      if (g != nullptr) {
        g += lo * h;
        for (int64_t k = 0; k < rows * h; ++k) dh_next[k] += g[k];
      }
      StepNorm2(part, s) = VecSquaredNorm(dh_next, rows * h);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t k = i * h;
        GateGrads(gates + i * g4, c_prev + k, tc + k, dh_next + k, h,
                  dc_next + k, dz + i * g4);
      }
      if (s > 0 && !CutBefore(s)) {
        Gemm(false, false, rows, h, g4, 1.0f, dz, g4, w_hh_.data(), h, 0.0f,
             dh_next, h);
      } else {
        std::fill(dh_next, dh_next + rows * h, 0.0f);
        std::fill(dc_next, dc_next + rows * h, 0.0f);
      }
    }
  }

  // Cell states [T+1, N, H] (like hs_), tanh(C_t) [T, N, H], activated
  // gates [T, N, 4H]; in Backward the cell-state carry [N, H].
  Tensor cs_, tc_, gates_buf_, dc_next_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewLstm(const LayerSpec& spec) {
  NNLAB_RETURN_IF_ERROR(ValidateRecurrentSpec(spec));
  return std::unique_ptr<Layer>(
      new Lstm(spec.units, spec.return_sequences, spec.bptt_window));
}

}  // namespace nnlab

// Recurrent layers (rnn.cc, lstm.cc) and their shared machinery: backprop
// through time, truncated BPTT, per-timestep gradient norms and stateful
// stepping. Operations on whole sequence models (generation) live in
// core/model/sequence_model.h, the per-timestep loss in core/model/loss.h.
//
// Shapes (per batch): input [N, T, F]; output [N, T, H] when
// return_sequences (many-to-many, or a stack of recurrent layers), else
// [N, H], the last step (many-to-one). N = batch, T = steps, F = features,
// H = units. Internally the layers run time-major ([T, N, .]) so every step
// is one contiguous GEMM and all steps share one GEMM for the input and
// weight-gradient products. Not thread-safe, like every Layer.
#ifndef NNLAB_CORE_LAYERS_RECURRENT_H_
#define NNLAB_CORE_LAYERS_RECURRENT_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/layers/layer.h"
#include "core/tensor/tensor.h"

namespace nnlab {

class RecurrentLayer : public Layer {
 public:
  // `gates`: weight blocks per unit (1 for RNN, 4 for LSTM);
  // `state_count`: tensors of carried state (1 for RNN: h; 2 for LSTM: h, c).
  RecurrentLayer(int64_t units, bool return_sequences, int64_t bptt_window,
                 int gates, int state_count);

  // InvalidArgument unless `in` is [T, F] with T >= 1 and F >= 1.
  absl::StatusOr<Shape> OutputShape(const Shape& in) const override;
  // The weights below; buffers: the per-step caches of inputs, gates,
  // states and cells, counted together, T (F + (G + 2) H) per sample.
  LayerCost Cost(const Shape& in) const override;
  // W_ih [G H, F], W_hh [G H, H] drawn with fan-out H (each gate block is
  // one H-unit transform), b [G H] zero; G = gates.
  void Init(const Shape& in, InitKind init, Rng* rng) override;
  std::vector<Param> Params() override;

  int64_t units() const { return units_; }
  bool return_sequences() const { return return_sequences_; }
  // 0 = full BPTT. k > 0: the sequence is cut into windows [0, k), [k, 2k)
  // ... and no gradient crosses a window boundary (the state entering a
  // window is treated as a constant, as when a long sequence is trained in
  // chunks of k steps with the state carried over; Williams & Peng 1990).
  int64_t bptt_window() const { return bptt_window_; }

  // ||dE/dh_t|| for t = 0..T-1 from the last Backward: the Frobenius norm
  // over the batch of the total gradient reaching h_t (from the output at
  // t and from step t+1). Watching it against t shows gradients vanishing
  // or exploding through time. Empty before the first Backward.
  const std::vector<double>& timestep_grad_norms() const { return grad_norms_; }

  // Stateful mode: each Forward starts from the state the previous Forward
  // ended in (zeros after ResetState or when the batch size changes), so a
  // sequence can be fed a step at a time (generation) or in chunks.
  // Gradients never flow into the carried state. Off (the default): every
  // Forward starts from zeros.
  void set_stateful(bool on) { stateful_ = on; }
  bool stateful() const { return stateful_; }
  void ResetState();
  // The carried state, each [N, H], owned by the layer: {h} or {h, c}.
  // Writable, so a stateful Forward can start from a chosen state.
  std::vector<Tensor*> State();

  // How many slices of the batch a Forward or Backward of n sequences of t
  // steps runs its recurrence in, in parallel: one per BLAS thread
  // (SetBlasThreads), with at least 16 sequences each, when the
  // recurrence's products add up to 4 M multiply-adds or more; else 1.
  // Sequences of a batch never meet inside a recurrence, so each slice runs
  // all its steps without waiting for the others (a per-step split of each
  // product would hand data between the threads at every step).
  int BatchParts(int64_t n, int64_t t) const;

 protected:
  // Copies (or zeros) the initial state for a batch of n into `dst`
  // ([n, H] each, preallocated). Spans, so that a braced list of pointers
  // costs no heap allocation per Forward.
  void LoadInitialState(int64_t n, absl::Span<float* const> dst);
  // Keeps the final state of a stateful Forward.
  void SaveFinalState(int64_t n, absl::Span<const float* const> src);
  // True if no gradient flows from step t back into step t-1.
  bool CutBefore(int64_t t) const {
    return bptt_window_ > 0 && t % bptt_window_ == 0;
  }

  // The steps shared by both layers around their own recurrences.
  // Forward: keeps n_, t_ and the time-major input xs_, then writes every
  // step's input term Z = X W_ih^T + b to `z` ([T, N, G H]) in one GEMM.
  void ProjectInputs(const Tensor& in, float* z);
  // The layer's output from hs_: all steps [N, T, H] or the last [N, H].
  void WriteOutput(Tensor* out) const;
  // Runs fn(part, lo, hi) for `parts` slices [lo, hi) of a batch of n,
  // each part on its own thread (ParallelFor).
  static void ForBatchSlices(
      int parts, int64_t n,
      absl::FunctionRef<void(int part, int64_t lo, int64_t hi)> fn);
  // Backward: sizes dz_ [T, N, G H] and the carry dh_next_ (zeroed), makes
  // the output gradient time-major when every step has one, and zeroes the
  // per-part squared norms that FinishBackward turns into
  // timestep_grad_norms(). Returns the number of slices the backward
  // recurrence runs in (BatchParts, decided once for both).
  int BeginBackward(const Tensor& grad_out);
  // dE/dh_s from the layer's output at step s, or nullptr if step s has no
  // output (many-to-one, s < T-1).
  const float* OutputGrad(const Tensor& grad_out, int64_t s) const;
  // Where part `part` of ForBatchSlices adds ||dE/dh_s||^2 over its slice.
  double& StepNorm2(int part, int64_t s) { return norms2_[part * t_ + s]; }
  // With dz_ filled for every step: accumulates all steps' weight and bias
  // gradients in one GEMM each, sums the parts' squared norms into
  // timestep_grad_norms() (in part order: deterministic), and writes dE/dx
  // [N, T, F] to `grad_in` unless it is null.
  void FinishBackward(Tensor* grad_in);

  const int64_t units_;
  const int64_t gates_;
  const bool return_sequences_;
  const int64_t bptt_window_;
  std::vector<double> grad_norms_;
  int64_t f_ = 0, n_ = 0, t_ = 0;  // Features, and the last batch and steps.
  Tensor w_ih_, w_ih_grad_, w_hh_, w_hh_grad_, bias_, bias_grad_;
  // Per-sequence buffers, reused across steps: inputs [T, N, F], states
  // [T+1, N, H] (h_s at s+1, the initial state at 0), output gradients
  // [T, N, H], pre-activation gradients [T, N, G H], dE/dh from the next
  // step [N, H], input gradients [T, N, F].
  Tensor xs_, hs_, gs_, dz_, dh_next_, dxs_;

 private:
  bool stateful_ = false;
  std::vector<Tensor> state_;
  // Squared gradient norms [parts, T] of the last Backward.
  std::vector<double> norms2_;
};

// [N, T, F] -> [T, N, F] and back; `dst` must not alias `src`.
void BatchToTimeMajor(const float* src, int64_t n, int64_t t, int64_t f,
                      float* dst);
void TimeToBatchMajor(const float* src, int64_t n, int64_t t, int64_t f,
                      float* dst);

// InvalidArgument unless spec.units > 0 and spec.bptt_window >= 0.
absl::Status ValidateRecurrentSpec(const LayerSpec& spec);

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_RECURRENT_H_

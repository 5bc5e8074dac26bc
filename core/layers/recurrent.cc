// Shared machinery of the recurrent layers.
#include "core/layers/recurrent.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/kernels/blas.h"
#include "core/kernels/parallel.h"
#include "core/kernels/vec_math.h"
#include "core/layers/init.h"
#include "core/status_macros.h"

namespace nnlab {

RecurrentLayer::RecurrentLayer(int64_t units, bool return_sequences,
                               int64_t bptt_window, int gates, int state_count)
    : units_(units),
      gates_(gates),
      return_sequences_(return_sequences),
      bptt_window_(bptt_window),
      state_(state_count) {}

absl::StatusOr<Shape> RecurrentLayer::OutputShape(const Shape& in) const {
  if (in.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("expects a sequence [steps, features] per sample, got ",
                     ShapeToString(in)));
  }
  if (in[0] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence length must be >= 1, got ", in[0], " (input ",
                     ShapeToString(in), ")"));
  }
  if (in[1] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "features per step must be >= 1, got ", ShapeToString(in)));
  }
  // Refuse weight matrices over 2^28 floats (1 GiB) before allocating.
  if (in[1] + units_ > (int64_t{1} << 28) / (gates_ * units_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights for ", in[1], " inputs and ", units_, " units are too large"));
  }
  if (return_sequences_) return Shape{in[0], units_};
  return Shape{units_};
}

LayerCost RecurrentLayer::Cost(const Shape& in) const {
  const int64_t t = in.size() == 2 ? in[0] : 1;
  const int64_t f = in.size() == 2 ? in[1] : CostElements(in);
  const int64_t gh = CostMul(gates_, units_);
  LayerCost cost = Layer::Cost(in);
  cost.params = CostMul(gh, CostAdd(CostAdd(f, units_), 1));
  const int64_t caches = CostMul(t, CostAdd(f, CostMul(gates_ + 2, units_)));
  cost.buffer_floats = std::max(cost.buffer_floats, caches);
  return cost;
}

void RecurrentLayer::ResetState() {
  for (Tensor& s : state_) s = Tensor();
}

std::vector<Tensor*> RecurrentLayer::State() {
  std::vector<Tensor*> out;
  for (Tensor& s : state_) out.push_back(&s);
  return out;
}

void RecurrentLayer::LoadInitialState(int64_t n, absl::Span<float* const> dst) {
  for (size_t k = 0; k < dst.size(); ++k) {
    const Tensor& s = state_[k];
    const bool usable =
        stateful_ && s.rank() == 2 && s.dim(0) == n && s.dim(1) == units_;
    if (usable) {
      std::copy(s.data(), s.data() + n * units_, dst[k]);
    } else {
      std::fill(dst[k], dst[k] + n * units_, 0.0f);
    }
  }
}

void RecurrentLayer::SaveFinalState(int64_t n,
                                    absl::Span<const float* const> src) {
  if (!stateful_) return;
  for (size_t k = 0; k < src.size(); ++k) {
    state_[k].Resize({n, units_});
    std::copy(src[k], src[k] + n * units_, state_[k].data());
  }
}

void RecurrentLayer::Init(const Shape& in, InitKind init, Rng* rng) {
  f_ = in[1];
  const int64_t h = units_, g = gates_ * units_;
  w_ih_ = Tensor({g, f_});
  w_ih_grad_ = Tensor({g, f_});
  w_hh_ = Tensor({g, h});
  w_hh_grad_ = Tensor({g, h});
  bias_ = Tensor({g});
  bias_grad_ = Tensor({g});
  InitWeights(init, f_, h, rng, &w_ih_);
  InitWeights(init, h, h, rng, &w_hh_);
}

std::vector<Param> RecurrentLayer::Params() {
  return {{name() + ".weight_ih", &w_ih_, &w_ih_grad_},
          {name() + ".weight_hh", &w_hh_, &w_hh_grad_},
          {name() + ".bias", &bias_, &bias_grad_}};
}

void RecurrentLayer::ProjectInputs(const Tensor& in, float* z) {
  const int64_t n = in.dim(0), t = in.dim(1), g = gates_ * units_;
  n_ = n;
  t_ = t;
  xs_.Resize({t, n, f_});
  BatchToTimeMajor(in.data(), n, t, f_, xs_.data());
  for (int64_t r = 0; r < t * n; ++r) {
    std::copy(bias_.data(), bias_.data() + g, z + r * g);
  }
  Gemm(false, true, t * n, g, f_, 1.0f, xs_.data(), f_, w_ih_.data(), f_, 1.0f,
       z, g);
}

void RecurrentLayer::WriteOutput(Tensor* out) const {
  const int64_t n = n_, t = t_, h = units_;
  if (return_sequences_) {
    out->Resize({n, t, h});
    TimeToBatchMajor(hs_.data() + n * h, n, t, h, out->data());
  } else {
    out->Resize({n, h});
    const float* last = hs_.data() + t * n * h;
    std::copy(last, last + n * h, out->data());
  }
}

int RecurrentLayer::BatchParts(int64_t n, int64_t t) const {
  // Fewer rows than this make products too thin to be worth a thread.
  constexpr int64_t kMinRows = 16;
  // The same floor as a product split by Gemm (blas.cc ThreadsFor): the
  // slices are handed to the other threads once for all T steps.
  constexpr double kMinMacs = 4.0 * (1 << 20);
  const double macs = static_cast<double>(t) * n * gates_ * units_ * units_;
  if (macs < kMinMacs) return 1;
  return static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(BlasThreads(), n / kMinRows)));
}

void RecurrentLayer::ForBatchSlices(
    int parts, int64_t n,
    absl::FunctionRef<void(int part, int64_t lo, int64_t hi)> fn) {
  ParallelFor(parts, [&](int part) {
    fn(part, n * part / parts, n * (part + 1) / parts);
  });
}

int RecurrentLayer::BeginBackward(const Tensor& grad_out) {
  const int64_t n = n_, t = t_, h = units_;
  if (return_sequences_) {
    gs_.Resize({t, n, h});
    BatchToTimeMajor(grad_out.data(), n, t, h, gs_.data());
  }
  dz_.Resize({t, n, gates_ * h});
  dh_next_.Resize({n, h});
  dh_next_.SetZero();
  const int parts = BatchParts(n, t);
  norms2_.assign(parts * t, 0.0);
  return parts;
}

const float* RecurrentLayer::OutputGrad(const Tensor& grad_out,
                                        int64_t s) const {
  if (return_sequences_) return gs_.data() + s * n_ * units_;
  return s == t_ - 1 ? grad_out.data() : nullptr;
}

void RecurrentLayer::FinishBackward(Tensor* grad_in) {
  const int64_t n = n_, t = t_, h = units_, g = gates_ * units_;
  // dW_ih += dZ^T X, dW_hh += dZ^T H_prev, db += sum dZ, over all steps.
  Gemm(true, false, g, f_, t * n, 1.0f, dz_.data(), g, xs_.data(), f_, 1.0f,
       w_ih_grad_.data(), f_);
  Gemm(true, false, g, h, t * n, 1.0f, dz_.data(), g, hs_.data(), h, 1.0f,
       w_hh_grad_.data(), h);
  const int64_t parts = static_cast<int64_t>(norms2_.size()) / t;
  grad_norms_.assign(t, 0.0);
  for (int64_t s = 0; s < t; ++s) {
    double sum = 0;
    for (int64_t part = 0; part < parts; ++part) sum += StepNorm2(part, s);
    grad_norms_[s] = std::sqrt(sum);
  }
  float* db = bias_grad_.data();
  for (int64_t r = 0; r < t * n; ++r) {
    const float* row = dz_.data() + r * g;
    for (int64_t j = 0; j < g; ++j) db[j] += row[j];
  }
  if (grad_in == nullptr) return;
  dxs_.Resize({t, n, f_});
  Gemm(false, false, t * n, f_, g, 1.0f, dz_.data(), g, w_ih_.data(), f_, 0.0f,
       dxs_.data(), f_);
  grad_in->Resize({n, t, f_});
  TimeToBatchMajor(dxs_.data(), n, t, f_, grad_in->data());
}

absl::Status ValidateRecurrentSpec(const LayerSpec& spec) {
  if (spec.units <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("units (hidden size) must be positive, got ", spec.units));
  }
  if (spec.bptt_window < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bptt_window must be >= 0 (0 = full BPTT), got ", spec.bptt_window));
  }
  return absl::OkStatus();
}

void BatchToTimeMajor(const float* src, int64_t n, int64_t t, int64_t f,
                      float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t s = 0; s < t; ++s) {
      std::copy(src + (i * t + s) * f, src + (i * t + s + 1) * f,
                dst + (s * n + i) * f);
    }
  }
}

void TimeToBatchMajor(const float* src, int64_t n, int64_t t, int64_t f,
                      float* dst) {
  for (int64_t s = 0; s < t; ++s) {
    for (int64_t i = 0; i < n; ++i) {
      std::copy(src + (s * n + i) * f, src + (s * n + i + 1) * f,
                dst + (i * t + s) * f);
    }
  }
}

}  // namespace nnlab

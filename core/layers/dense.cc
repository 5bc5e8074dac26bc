// Dense (fully connected) layer: y = x W^T + b. N = batch, I = inputs,
// O = outputs (units); W [O, I], b [O]. The time-distributed form
// ("time_dense", the RNN's output map y_t = W_s h_t + b at every step of
// [N, T, I]) is the same layer over all N*T rows at once.
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/kernels/blas.h"
#include "core/layers/init.h"
#include "core/layers/layer_factories.h"

namespace nnlab {
namespace {

class Dense : public Layer {
 public:
  Dense(int64_t units, bool per_step) : units_(units), per_step_(per_step) {}

  absl::string_view kind() const override {
    return per_step_ ? "time_dense" : "dense";
  }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    if (per_step_ && in.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("expects a sequence [steps, features] per sample, got ",
                       ShapeToString(in)));
    }
    if (!per_step_ && in.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("expects a rank-1 input per sample, got ",
                       ShapeToString(in), " (add a flatten layer first)"));
    }
    // Refuse weight matrices over 2^28 floats (1 GiB) before allocating.
    if (in.back() > (int64_t{1} << 28) / units_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight matrix ", units_, " x ", in.back(), " is too large"));
    }
    if (per_step_) return Shape{in[0], units_};
    return Shape{units_};
  }

  // W [O, I] and b [O].
  LayerCost Cost(const Shape& in) const override {
    LayerCost cost = Layer::Cost(in);
    const int64_t inputs =
        per_step_ ? (in.empty() ? 0 : in.back()) : CostElements(in);
    cost.params = CostAdd(CostMul(units_, inputs), units_);
    return cost;
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    inputs_ = in.back();
    weight_ = Tensor({units_, inputs_});
    weight_grad_ = Tensor({units_, inputs_});
    bias_ = Tensor({units_});
    bias_grad_ = Tensor({units_});
    InitWeights(init, inputs_, units_, rng, &weight_);
    // The lecture's N(0, 1) experiment draws biases from N(0, 1) too; the
    // other initialisers start biases at zero, as do the sequence heads.
    if (init == InitKind::kNormal && !per_step_) {
      InitWeights(init, 1, 1, rng, &bias_);
    }
  }

  // Rows (samples, or sample-steps) are independent: one product for all.
  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t n = Rows(in);
    in_ = &in;
    if (per_step_) {
      out->Resize({in.dim(0), in.dim(1), units_});
    } else {
      out->Resize({n, units_});
    }
    GemmNTBias(n, units_, inputs_, in.data(), inputs_, weight_.data(), inputs_,
               bias_.data(), out->data(), units_);
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int64_t n = Rows(*in_);
    const float* dy = grad_out.data();
    // dW += dy^T x ; db += sum_rows dy ; dx = dy W.
    Gemm(true, false, units_, inputs_, n, 1.0f, dy, units_, in_->data(),
         inputs_, 1.0f, weight_grad_.data(), inputs_);
    float* db = bias_grad_.data();
    for (int64_t r = 0; r < n; ++r) {
      const float* row = dy + r * units_;
      for (int64_t o = 0; o < units_; ++o) db[o] += row[o];
    }
    if (grad_in != nullptr) {
      grad_in->Resize(in_->shape());
      Gemm(false, false, n, inputs_, units_, 1.0f, dy, units_, weight_.data(),
           inputs_, 0.0f, grad_in->data(), inputs_);
    }
  }

  std::vector<Param> Params() override {
    return {{name() + ".weight", &weight_, &weight_grad_},
            {name() + ".bias", &bias_, &bias_grad_}};
  }

 private:
  int64_t Rows(const Tensor& in) const {
    return per_step_ ? in.dim(0) * in.dim(1) : in.dim(0);
  }

  const int64_t units_;
  const bool per_step_;  // time_dense: applied at every step of a sequence.
  int64_t inputs_ = 0;
  Tensor weight_, weight_grad_, bias_, bias_grad_;
  const Tensor* in_ = nullptr;
};

absl::StatusOr<std::unique_ptr<Layer>> NewDenseLayer(const LayerSpec& spec,
                                                     bool per_step) {
  if (spec.units <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("units must be positive, got ", spec.units));
  }
  return std::unique_ptr<Layer>(new Dense(spec.units, per_step));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewDense(const LayerSpec& spec) {
  return NewDenseLayer(spec, /*per_step=*/false);
}

absl::StatusOr<std::unique_ptr<Layer>> NewTimeDense(const LayerSpec& spec) {
  return NewDenseLayer(spec, /*per_step=*/true);
}

}  // namespace nnlab

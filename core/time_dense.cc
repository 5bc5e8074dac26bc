// Time-distributed dense layer: the RNN's output map y_t = W_s h_t + b
// applied at every step of a sequence (many-to-many heads).
// N = batch, T = steps, I = inputs per step, O = units; W [O, I], b [O].
#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/blas.h"
#include "core/init.h"
#include "core/layers.h"

namespace nnlab {
namespace {

class TimeDense : public Layer {
 public:
  explicit TimeDense(int64_t units) : units_(units) {}

  absl::string_view kind() const override { return "time_dense"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    if (in.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("expects a sequence [steps, features] per sample, got ",
                       ShapeToString(in)));
    }
    if (in[1] > (int64_t{1} << 28) / units_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight matrix ", units_, " x ", in[1], " is too large"));
    }
    return Shape{in[0], units_};
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    inputs_ = in[1];
    weight_ = Tensor({units_, inputs_});
    weight_grad_ = Tensor({units_, inputs_});
    bias_ = Tensor({units_});
    bias_grad_ = Tensor({units_});
    InitWeights(init, inputs_, units_, rng, &weight_);
  }

  // Rows of [N, T, I] are independent: one GEMM over all N*T of them.
  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const int64_t rows = in.dim(0) * in.dim(1);
    in_ = &in;
    out->Resize({in.dim(0), in.dim(1), units_});
    float* y = out->data();
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(bias_.data(), bias_.data() + units_, y + r * units_);
    }
    Gemm(false, true, rows, units_, inputs_, 1.0f, in.data(), inputs_,
         weight_.data(), inputs_, 1.0f, y, units_);
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    const int64_t rows = in_->dim(0) * in_->dim(1);
    const float* dy = grad_out.data();
    Gemm(true, false, units_, inputs_, rows, 1.0f, dy, units_, in_->data(),
         inputs_, 1.0f, weight_grad_.data(), inputs_);
    float* db = bias_grad_.data();
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = dy + r * units_;
      for (int64_t o = 0; o < units_; ++o) db[o] += row[o];
    }
    if (grad_in != nullptr) {
      grad_in->Resize(in_->shape());
      Gemm(false, false, rows, inputs_, units_, 1.0f, dy, units_,
           weight_.data(), inputs_, 0.0f, grad_in->data(), inputs_);
    }
  }

  std::vector<Param> Params() override {
    return {{name() + ".weight", &weight_, &weight_grad_},
            {name() + ".bias", &bias_, &bias_grad_}};
  }

 private:
  int64_t units_;
  int64_t inputs_ = 0;
  Tensor weight_, weight_grad_, bias_, bias_grad_;
  const Tensor* in_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewTimeDense(const LayerSpec& spec) {
  if (spec.units <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("units must be positive, got ", spec.units));
  }
  return std::unique_ptr<Layer>(new TimeDense(spec.units));
}

}  // namespace nnlab

// Elementwise activations: sigmoid 1/(1+e^-z), tanh, ReLU max(0, z), leaky
// ReLU max(z, alpha z). Each caches its output; the derivative is written
// in terms of it (sigmoid' = y(1-y), tanh' = 1-y^2, ReLU' = [y > 0]).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/layers.h"

namespace nnlab {
namespace {

enum class Fn { kSigmoid, kTanh, kRelu, kLeakyRelu };

// e^x within 2 ulp of std::exp for x in [-87, 88] (clamped to it), in plain
// arithmetic so that loops over it vectorise; libm's expf is a scalar call
// per element. Cephes expf: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-7
// polynomial, 2^n put into the exponent bits.
inline float Exp(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // n = round(x / ln2) by the 1.5 * 2^23 trick (SSE2 has no round).
  const float kShift = 12582912.0f;
  const float t = x * 1.44269504088896341f + kShift;
  const float n = t - kShift;
  int32_t n_int;
  std::memcpy(&n_int, &t, sizeof(n_int));
  n_int -= 0x4B400000;  // The bits of kShift: t's low bits are n.
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (n_int + 127) << 23;  // 2^n, n in [-126, 127].
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return er * scale;
}

class Activation : public Layer {
 public:
  Activation(Fn fn, float alpha) : fn_(fn), alpha_(alpha) {}

  absl::string_view kind() const override {
    switch (fn_) {
      case Fn::kSigmoid:
        return "sigmoid";
      case Fn::kTanh:
        return "tanh";
      case Fn::kRelu:
        return "relu";
      case Fn::kLeakyRelu:
        return "leaky_relu";
    }
    return "";
  }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    return in;
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    out->Resize(in.shape());
    out_ = out;
    const float* x = in.data();
    float* y = out->data();
    const int64_t n = in.size();
    switch (fn_) {
      case Fn::kSigmoid:
        for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + Exp(-x[i]));
        break;
      case Fn::kTanh:
        for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
        break;
      case Fn::kRelu:
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
      case Fn::kLeakyRelu:
        for (int64_t i = 0; i < n; ++i) {
          y[i] = x[i] > 0.0f ? x[i] : alpha_ * x[i];
        }
        break;
    }
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    if (grad_in == nullptr) return;
    grad_in->Resize(grad_out.shape());
    const float* y = out_->data();
    const float* dy = grad_out.data();
    float* dx = grad_in->data();
    const int64_t n = grad_out.size();
    switch (fn_) {
      case Fn::kSigmoid:
        for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
      case Fn::kTanh:
        for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
      case Fn::kRelu:
        for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
      case Fn::kLeakyRelu:
        // alpha >= 0, so y > 0 exactly when the input was positive.
        for (int64_t i = 0; i < n; ++i) {
          dx[i] = y[i] > 0.0f ? dy[i] : alpha_ * dy[i];
        }
        break;
    }
  }

  // Sigmoid units count as saturated when |z| > 4 (sigmoid' < 7% of its
  // peak), tanh units when |z| > 2 (tanh' < 7% of its peak); a ReLU unit is
  // dead when it outputs 0 for every sample of the batch.
  double SaturatedFraction(const Tensor& out) const override {
    const int64_t n = out.size();
    if (n == 0) return 0.0;
    const float* y = out.data();
    int64_t count = 0;
    switch (fn_) {
      case Fn::kSigmoid: {
        const float lo = 1.0f / (1.0f + std::exp(4.0f));
        for (int64_t i = 0; i < n; ++i) count += (y[i] < lo || y[i] > 1 - lo);
        return double(count) / n;
      }
      case Fn::kTanh: {
        const float hi = std::tanh(2.0f);
        for (int64_t i = 0; i < n; ++i) count += std::abs(y[i]) > hi;
        return double(count) / n;
      }
      case Fn::kRelu:
      case Fn::kLeakyRelu: {
        const int64_t rows = out.rows(), cols = out.cols();
        for (int64_t c = 0; c < cols; ++c) {
          bool dead = true;
          for (int64_t r = 0; r < rows && dead; ++r)
            dead = y[r * cols + c] <= 0;
          count += dead;
        }
        return cols == 0 ? 0.0 : double(count) / cols;
      }
    }
    return -1.0;
  }

 private:
  Fn fn_;
  float alpha_;
  const Tensor* out_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewActivation(absl::string_view kind) {
  if (kind == "sigmoid")
    return std::unique_ptr<Layer>(new Activation(Fn::kSigmoid, 0));
  if (kind == "tanh")
    return std::unique_ptr<Layer>(new Activation(Fn::kTanh, 0));
  if (kind == "relu")
    return std::unique_ptr<Layer>(new Activation(Fn::kRelu, 0));
  return absl::InvalidArgumentError(
      absl::StrCat("unknown activation \"", std::string(kind), "\""));
}

absl::StatusOr<std::unique_ptr<Layer>> NewLeakyRelu(const LayerSpec& spec) {
  if (!(spec.alpha >= 0.0f && spec.alpha < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("alpha must be in [0, 1), got ", spec.alpha));
  }
  return std::unique_ptr<Layer>(new Activation(Fn::kLeakyRelu, spec.alpha));
}

}  // namespace nnlab

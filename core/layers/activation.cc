// Elementwise activations: sigmoid 1/(1+e^-z), tanh, ReLU max(0, z), leaky
// ReLU max(z, alpha z). Each caches its output; the derivative is written
// in terms of it (sigmoid' = y(1-y), tanh' = 1-y^2, ReLU' = [y > 0]).
// Sigmoid and tanh run vectorised (core/kernels/vec_math.h), not libm per
// element.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/kernels/vec_math.h"
#include "core/layers/conv_chain.h"
#include "core/layers/layer_factories.h"
#include "core/layers/split_elements.h"

namespace nnlab {
namespace {

enum class Fn { kSigmoid, kTanh, kRelu, kLeakyRelu };

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
        VecSigmoid(x, y, n);
        break;
      case Fn::kTanh:
        VecTanh(x, y, n);
        break;
      case Fn::kRelu:
        SplitElements(n, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        });
        break;
      case Fn::kLeakyRelu: {
        // alpha by value: read through a pointer (`this`, or a captured
        // reference) it could alias y, and GCC then kept a scalar loop
        // that reloads it for every element.
        const float alpha = alpha_;
        SplitElements(n, [&, alpha](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            const float v = x[i];
            y[i] = v > 0.0f ? v : alpha * v;
          }
        });
        break;
      }
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
      // dy is read whether or not it is used: a load under the condition
      // kept GCC from vectorising these loops (a scalar branch per
      // element, mispredicted on about half of them: 14% of resnet-small's
      // training step); a select gives the same bits.
      case Fn::kRelu:
        SplitElements(n, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            const float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
          }
        });
        break;
      case Fn::kLeakyRelu: {
        // alpha >= 0, so y > 0 exactly when the input was positive; alpha by
        // value for the reason given in Forward.
        const float alpha = alpha_;
        SplitElements(n, [&, alpha](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) {
            const float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : alpha * g;
          }
        });
        break;
      }
    }
  }

  // Sigmoid units count as saturated when |z| > 4 (sigmoid' < 7% of its
  // peak), tanh units when |z| > 2 (tanh' < 7% of its peak); a ReLU unit is
  // dead when it outputs 0 for every sample of the batch.
  bool AppendToConvChain(ConvChain* chain) override {
    return fn_ == Fn::kRelu && chain->AddRelu();
  }

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

absl::StatusOr<std::unique_ptr<Layer>> NewSigmoid(const LayerSpec&) {
  return std::unique_ptr<Layer>(new Activation(Fn::kSigmoid, 0));
}

absl::StatusOr<std::unique_ptr<Layer>> NewTanh(const LayerSpec&) {
  return std::unique_ptr<Layer>(new Activation(Fn::kTanh, 0));
}

absl::StatusOr<std::unique_ptr<Layer>> NewRelu(const LayerSpec&) {
  return std::unique_ptr<Layer>(new Activation(Fn::kRelu, 0));
}

absl::StatusOr<std::unique_ptr<Layer>> NewLeakyRelu(const LayerSpec& spec) {
  if (!(spec.alpha >= 0.0f && spec.alpha < 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("alpha must be in [0, 1), got ", spec.alpha));
  }
  return std::unique_ptr<Layer>(new Activation(Fn::kLeakyRelu, spec.alpha));
}

}  // namespace nnlab

// Central finite-difference checks of Layer::Backward and Loss gradients,
// shared by the layer tests.
//
// For a layer L and a fixed random projection R, E(x, params) = sum(R *
// L(x)); dE/dx and dE/dparam from Backward(R) must match
// (E(v + h) - E(v - h)) / 2h element by element.
#ifndef NNLAB_TESTS_CORE_GRADIENT_CHECK_H_
#define NNLAB_TESTS_CORE_GRADIENT_CHECK_H_

#include <algorithm>
#include <array>
#include <cmath>
#include <ostream>
#include <string>

#include "core/layers/layer.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace testing_util {

inline void FillNormal(Tensor* t, Rng* rng, float sd = 1.0f) {
  for (int64_t i = 0; i < t->size(); ++i) (*t)[i] = rng->Normal(0.0f, sd);
}

// Returns sum(r * layer(x)) in double.
inline double ProjectedOutput(Layer* layer, const Tensor& x, const Tensor& r,
                              Mode mode, Tensor* out) {
  layer->Forward(x, out, mode);
  double s = 0;
  for (int64_t i = 0; i < out->size(); ++i) s += double((*out)[i]) * r[i];
  return s;
}

// Relative error that tolerates tiny absolute values.
inline double RelError(double a, double b) {
  return std::abs(a - b) / std::max({1e-2, std::abs(a), std::abs(b)});
}

// Checks every input and parameter gradient of `layer` at input `x`.
// `reset` (optional) is called before every forward pass, for layers whose
// forward is random (dropout re-seeds its RNG there). Tolerance is relative
// (float32 central differences with h = 1e-2 in double-accumulated sums).
template <typename Reset = void (*)()>
void CheckLayerGradients(
    Layer* layer, Tensor* x, Mode mode = Mode::kTrain, double tol = 2e-2,
    float h = 1e-2f, Reset reset = [] {}) {
  Rng rng(123);
  Tensor out;
  reset();
  layer->Forward(*x, &out, mode);
  Tensor r(out.shape());
  FillNormal(&r, &rng);

  for (const Param& p : layer->Params()) p.grad->SetZero();
  reset();
  layer->Forward(*x, &out, mode);
  Tensor grad_in;
  layer->Backward(r, &grad_in);
  ASSERT_EQ(grad_in.shape(), x->shape()) << layer->name();

  auto numeric = [&](float* v) {
    const float saved = *v;
    *v = saved + h;
    reset();
    const double plus = ProjectedOutput(layer, *x, r, mode, &out);
    *v = saved - h;
    reset();
    const double minus = ProjectedOutput(layer, *x, r, mode, &out);
    *v = saved;
    return (plus - minus) / (2.0 * h);
  };

  for (int64_t i = 0; i < x->size(); ++i) {
    const double num = numeric(&(*x)[i]);
    EXPECT_LT(RelError(grad_in[i], num), tol)
        << layer->name() << " input[" << i << "] analytic " << grad_in[i]
        << " numeric " << num;
  }
  for (const Param& p : layer->Params()) {
    Tensor analytic = p.grad->Clone();
    for (int64_t i = 0; i < p.value->size(); ++i) {
      const double num = numeric(&(*p.value)[i]);
      EXPECT_LT(RelError(analytic[i], num), tol)
          << p.name << "[" << i << "] analytic " << analytic[i] << " numeric "
          << num;
    }
  }
}

// One Conv2D configuration of a parameterised test. (The input is an array,
// not a Shape: GCC 12 at -O2 reports a false -Wfree-nonheap-object when
// gtest copies a parameter holding an InlinedVector.)
struct ConvCase {
  int64_t filters, kernel, stride, padding;
  std::array<int64_t, 3> input;  // [channels, height, width] per sample.
  Shape in() const { return Shape(input.begin(), input.end()); }
};

inline void PrintTo(const ConvCase& c, std::ostream* os) {
  *os << "filters " << c.filters << " kernel " << c.kernel << " stride "
      << c.stride << " padding " << c.padding << " input "
      << ShapeToString(c.in());
}

}  // namespace testing_util
}  // namespace nnlab

#endif  // NNLAB_TESTS_CORE_GRADIENT_CHECK_H_

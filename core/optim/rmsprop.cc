// RMSprop (Tieleman & Hinton 2012, lecture 6e):
// E = rho E + (1 - rho) g^2; w -= lr g / (sqrt(E) + eps).
#include <cmath>

#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Rmsprop::Rmsprop(std::vector<Param> params, float rho, float epsilon)
    : Optimizer(std::move(params)),
      rho_(rho),
      epsilon_(epsilon),
      mean_sq_(ZeroStateLike(params_)) {}

void Rmsprop::Step(float lr) {
  const float rho = rho_;
  const float one_minus_rho = 1.0f - rho_;
  const float eps = epsilon_;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n && mean_sq_[k].size() == n);
    float* __restrict w = p.value->data();
    const float* __restrict g = p.grad->data();
    float* __restrict e = mean_sq_[k].data();
    for (int64_t i = 0; i < n; ++i) {
      e[i] = rho * e[i] + one_minus_rho * g[i] * g[i];
      w[i] -= lr * g[i] / (std::sqrt(e[i]) + eps);
    }
  }
  ++step_;
}

std::vector<std::pair<std::string, Tensor*>> Rmsprop::State() {
  std::vector<std::pair<std::string, Tensor*>> out;
  AppendStateSlots(params_, "mean_sq", &mean_sq_, &out);
  return out;
}

}  // namespace nnlab

// Adagrad (Duchi, Hazan & Singer 2011): G += g^2; w -= lr g / (sqrt(G) + eps).
#include <cmath>

#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Adagrad::Adagrad(std::vector<Param> params, float epsilon)
    : Optimizer(std::move(params)),
      epsilon_(epsilon),
      sum_sq_(ZeroStateLike(params_)) {}

void Adagrad::Step(float lr) {
  const float eps = epsilon_;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n && sum_sq_[k].size() == n);
    float* __restrict w = p.value->data();
    const float* __restrict g = p.grad->data();
    float* __restrict s = sum_sq_[k].data();
    for (int64_t i = 0; i < n; ++i) {
      s[i] += g[i] * g[i];
      w[i] -= lr * g[i] / (std::sqrt(s[i]) + eps);
    }
  }
  ++step_;
}

std::vector<std::pair<std::string, Tensor*>> Adagrad::State() {
  std::vector<std::pair<std::string, Tensor*>> out;
  AppendStateSlots(params_, "sum_sq", &sum_sq_, &out);
  return out;
}

}  // namespace nnlab

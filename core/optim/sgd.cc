// Plain (mini-batch) gradient descent: w -= lr g.
#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Sgd::Sgd(std::vector<Param> params) : Optimizer(std::move(params)) {}

void Sgd::Step(float lr) {
  for (const Param& p : params_) {
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n);
    float* __restrict w = p.value->data();
    const float* __restrict g = p.grad->data();
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * g[i];
  }
  ++step_;
}

}  // namespace nnlab

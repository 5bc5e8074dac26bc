// Classical momentum (Polyak 1964): v = mu v + lr g; w -= v.
#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Momentum::Momentum(std::vector<Param> params, float momentum)
    : Optimizer(std::move(params)),
      momentum_(momentum),
      velocity_(ZeroStateLike(params_)) {}

void Momentum::Step(float lr) {
  const float mu = momentum_;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n && velocity_[k].size() == n);
    float* __restrict w = p.value->data();
    const float* __restrict g = p.grad->data();
    float* __restrict v = velocity_[k].data();
    for (int64_t i = 0; i < n; ++i) {
      v[i] = mu * v[i] + lr * g[i];
      w[i] -= v[i];
    }
  }
  ++step_;
}

std::vector<std::pair<std::string, Tensor*>> Momentum::State() {
  std::vector<std::pair<std::string, Tensor*>> out;
  AppendStateSlots(params_, "velocity", &velocity_, &out);
  return out;
}

}  // namespace nnlab

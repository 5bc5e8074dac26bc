// Nesterov accelerated gradient (Sutskever et al. 2013; Bengio et al. 2012
// reformulation): v = mu v + g; w -= lr (g + mu v).
//
// Why this evaluates the gradient at the look-ahead point: in the textbook
// form u = mu u + lr grad(theta - mu u); theta -= u, the gradient is taken at
// theta - mu u. Store w = theta - mu u (the look-ahead point itself) instead
// of theta, and keep v = u / lr. Then g = grad(w) is exactly the look-ahead
// gradient, the velocity update becomes v = mu v + g, and
// w_new = theta_new - mu u_new = (theta - u_new) - mu u_new
//       = w + mu u - (1 + mu) u_new = w - lr (g + mu v_new),
// using u_new = mu u + lr g. (With a changing lr the two forms differ only in
// how old velocity is scaled.) The stored weights are the look-ahead point,
// which is also what inference uses.
#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Nesterov::Nesterov(std::vector<Param> params, float momentum)
    : Optimizer(std::move(params)),
      momentum_(momentum),
      velocity_(ZeroStateLike(params_)) {}

void Nesterov::Step(float lr) {
  const float mu = momentum_;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n && velocity_[k].size() == n);
    float* __restrict w = p.value->data();
    const float* __restrict g = p.grad->data();
    float* __restrict v = velocity_[k].data();
    for (int64_t i = 0; i < n; ++i) {
      v[i] = mu * v[i] + g[i];
      w[i] -= lr * (g[i] + mu * v[i]);
    }
  }
  ++step_;
}

std::vector<std::pair<std::string, Tensor*>> Nesterov::State() {
  std::vector<std::pair<std::string, Tensor*>> out;
  AppendStateSlots(params_, "velocity", &velocity_, &out);
  return out;
}

}  // namespace nnlab

// Adam (Kingma & Ba 2015, Algorithm 1): m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2; w -= lr m_hat / (sqrt(v_hat) + eps) with
// m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), t = 1, 2, ...
//
// The lecture slides write the bias-corrected second moment with m
// (m / (1 - b2^t)); implemented as the paper: v_hat = v / (1 - b2^t).
#include <cmath>

#include "core/kernels/vec_math.h"
#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Adam::Adam(std::vector<Param> params, float beta1, float beta2, float epsilon)
    : Optimizer(std::move(params)),
      beta1_(beta1),
      beta2_(beta2),
      epsilon_(epsilon),
      m_(ZeroStateLike(params_)),
      v_(ZeroStateLike(params_)) {}

void Adam::Step(float lr) {
  // Bias corrections in double (b^t underflows gracefully); the loop then
  // needs lr m / (1 - b1^t) / (sqrt(v) / sqrt(1 - b2^t) + eps).
  const double t = static_cast<double>(step_ + 1);
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1_), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2_), t);
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const AdamCoefficients c = {beta1_,    1.0f - beta1_, beta2_,  1.0f - beta2_,
                              step_size, inv_sqrt_bc2,  epsilon_};
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n && m_[k].size() == n && v_[k].size() == n);
    // Vectorised (AVX2 where the CPU has it): core/kernels/vec_math.h.
    VecAdamUpdate(c, p.grad->data(), p.value->data(), m_[k].data(),
                  v_[k].data(), n);
  }
  ++step_;
}

std::vector<std::pair<std::string, Tensor*>> Adam::State() {
  std::vector<std::pair<std::string, Tensor*>> out;
  AppendStateSlots(params_, "m", &m_, &out);
  AppendStateSlots(params_, "v", &v_, &out);
  return out;
}

}  // namespace nnlab

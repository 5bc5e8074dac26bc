// Adadelta (Zeiler 2012, Algorithm 1): Eg = rho Eg + (1 - rho) g^2;
// dx = -sqrt(Edx + eps) / sqrt(Eg + eps) g; Edx = rho Edx + (1 - rho) dx^2;
// w += lr dx. lr is a plain multiplier (1 in the paper).
//
// The lecture slides write the numerator as sqrt(E[w^2] + eps); implemented
// as the paper: the RMS of past *updates* dx, which gives the update the
// units of w.
#include <cmath>

#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

Adadelta::Adadelta(std::vector<Param> params, float rho, float epsilon)
    : Optimizer(std::move(params)),
      rho_(rho),
      epsilon_(epsilon),
      mean_sq_(ZeroStateLike(params_)),
      mean_sq_update_(ZeroStateLike(params_)) {}

void Adadelta::Step(float lr) {
  const float rho = rho_;
  const float one_minus_rho = 1.0f - rho_;
  const float eps = epsilon_;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Param& p = params_[k];
    const int64_t n = p.value->size();
    NNLAB_CHECK(p.grad->size() == n && mean_sq_[k].size() == n &&
                mean_sq_update_[k].size() == n);
    float* __restrict w = p.value->data();
    const float* __restrict g = p.grad->data();
    float* __restrict eg = mean_sq_[k].data();
    float* __restrict edx = mean_sq_update_[k].data();
    for (int64_t i = 0; i < n; ++i) {
      eg[i] = rho * eg[i] + one_minus_rho * g[i] * g[i];
      const float dx = -std::sqrt(edx[i] + eps) / std::sqrt(eg[i] + eps) * g[i];
      edx[i] = rho * edx[i] + one_minus_rho * dx * dx;
      w[i] += lr * dx;
    }
  }
  ++step_;
}

std::vector<std::pair<std::string, Tensor*>> Adadelta::State() {
  std::vector<std::pair<std::string, Tensor*>> out;
  AppendStateSlots(params_, "mean_sq", &mean_sq_, &out);
  AppendStateSlots(params_, "mean_sq_update", &mean_sq_update_, &out);
  return out;
}

}  // namespace nnlab

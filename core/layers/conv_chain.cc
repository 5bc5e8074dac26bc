#include "core/layers/conv_chain.h"

#include <algorithm>
#include <cmath>

#include "core/kernels/blas.h"
#include "core/kernels/parallel.h"

namespace nnlab {
namespace {

bool Contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

void ConvChain::AddConv(const ConvGeometry& g, const Tensor* weight,
                        const Tensor* bias) {
  // The lowest slot the step neither reads nor must keep: a chain of
  // plain convolutions alternates between two, a residual block uses three.
  int dst = 0;
  while (dst == plan_.value || Contains(plan_.live, dst)) ++dst;
  Plan::Step step;
  step.conv.g = g;
  step.conv.src = plan_.value;
  step.conv.dst = dst;
  step.weight = weight;
  step.bias = bias;
  plan_.steps.push_back(step);
  plan_.value = dst;
  plan_.shape = {g.f, g.ho, g.wo};
}

bool ConvChain::FoldBatchNorm(const Tensor* gamma, const Tensor* beta,
                              const Tensor* mean, const Tensor* var,
                              double epsilon) {
  if (plan_.steps.empty()) return false;
  Plan::Step& last = plan_.steps.back();
  if (last.conv.dst != plan_.value || !last.conv.post.empty() ||
      last.bn[0] != nullptr || gamma->size() != last.conv.g.f) {
    return false;
  }
  last.bn[0] = gamma;
  last.bn[1] = beta;
  last.bn[2] = mean;
  last.bn[3] = var;
  last.epsilon = epsilon;
  return true;
}

bool ConvChain::AddRelu() {
  if (plan_.steps.empty() || plan_.steps.back().conv.dst != plan_.value) {
    return false;
  }
  plan_.steps.back().conv.post.push_back(ChainConv::Post::kRelu);
  return true;
}

void ConvChain::KeepLive(int slot) { plan_.live.push_back(slot); }

bool ConvChain::AddShortcut(int slot) {
  if (slot < 0 || plan_.steps.empty()) return false;
  ChainConv& last = plan_.steps.back().conv;
  if (last.dst != plan_.value || last.src == slot) return false;
  // The step writes into the shortcut's slot, adding to what it holds.
  last.dst = slot;
  last.post.push_back(ChainConv::Post::kSum);
  plan_.value = slot;
  plan_.live.erase(std::find(plan_.live.begin(), plan_.live.end(), slot));
  return true;
}

void ConvChain::set_value(int slot, const Shape& shape) {
  plan_.value = slot;
  plan_.shape = shape;
}

OneDnnConvChain* ConvChain::KernelFor(int part, int64_t n) {
  if (static_cast<int>(kernels_.size()) <= part) kernels_.resize(part + 1);
  auto& cache = kernels_[part];
  for (auto& [size, kernel] : cache) {
    if (size == n) return kernel.get();
  }
  if (cache.size() >= kMaxCachedSizes) cache.erase(cache.begin());
  std::vector<ChainConv> convs;
  for (const Plan::Step& step : plan_.steps) {
    convs.push_back(step.conv);
    convs.back().g.n = n;
  }
  cache.emplace_back(n, OneDnnConvChain::Create(convs, plan_.value));
  return cache.back().second.get();
}

bool ConvChain::Forward(const Tensor& x, Tensor* y) {
  const int64_t n = x.dim(0);
  const int parts = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(BlasThreads(), n)));
  for (int part = 0; part < parts; ++part) {
    const int64_t lo = n * part / parts, hi = n * (part + 1) / parts;
    if (KernelFor(part, hi - lo) == nullptr) return false;
  }
  const size_t steps = plan_.steps.size();
  folded_w_.resize(steps);
  folded_b_.resize(steps);
  weights_.resize(steps);
  biases_.resize(steps);
  for (size_t i = 0; i < steps; ++i) {
    const Plan::Step& step = plan_.steps[i];
    weights_[i] = step.weight->data();
    biases_[i] = step.bias->data();
    if (step.bn[0] == nullptr) continue;
    // w' = w * s and b' = (b - mean) * s + beta per filter, s = gamma /
    // sqrt(var + epsilon), as BatchNorm computes its inverse deviation.
    const Tensor &gamma = *step.bn[0], &beta = *step.bn[1], &mean = *step.bn[2],
                 &var = *step.bn[3];
    Tensor& w = folded_w_[i];
    Tensor& b = folded_b_[i];
    w.Resize(step.weight->shape());
    b.Resize(step.bias->shape());
    const int64_t filters = b.size(), per_filter = w.size() / filters;
    for (int64_t f = 0; f < filters; ++f) {
      const float inv_std =
          float(1.0 / std::sqrt(double(var[f]) + step.epsilon));
      const float s = gamma[f] * inv_std;
      for (int64_t j = 0; j < per_filter; ++j) {
        w[f * per_filter + j] = (*step.weight)[f * per_filter + j] * s;
      }
      b[f] = ((*step.bias)[f] - mean[f]) * s + beta[f];
    }
    weights_[i] = w.data();
    biases_[i] = b.data();
  }
  Shape shape = {n};
  for (int64_t d : plan_.shape) shape.push_back(d);
  y->Resize(shape);
  const int64_t in_size = x.size() / n, out_size = y->size() / n;
  ParallelFor(parts, [&](int part) {
    const int64_t lo = n * part / parts, hi = n * (part + 1) / parts;
    KernelFor(part, hi - lo)
        ->Run(x.data() + lo * in_size, weights_.data(), biases_.data(),
              y->data() + lo * out_size);
  });
  return true;
}

}  // namespace nnlab

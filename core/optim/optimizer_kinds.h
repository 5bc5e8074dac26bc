// The concrete optimizers behind MakeOptimizer (optimizer.cc), one per file.
// Only the factory and tests include this header; everyone else uses
// Optimizer through MakeOptimizer.
//
// Every optimizer allocates its per-parameter state (zero-filled, shaped
// like the parameter) in its constructor, in vectors parallel to params_, so
// Step allocates nothing. REQUIRES for Step: every parameter's value and
// grad still have the size they had at construction.
#ifndef NNLAB_CORE_OPTIM_OPTIMIZER_KINDS_H_
#define NNLAB_CORE_OPTIM_OPTIMIZER_KINDS_H_

#include <string>
#include <utility>
#include <vector>

#include "core/optim/optimizer.h"
#include "core/tensor/tensor.h"

namespace nnlab {

// Default hyperparameters (optimizer.h documents them).
float DefaultLearningRate(OptimizerKind kind);
// Default epsilon of the adaptive optimizers; 0 for those without one.
float DefaultEpsilon(OptimizerKind kind);
inline constexpr float kAdadeltaDefaultRho = 0.95f;

// sgd.cc: w -= lr g.
class Sgd : public Optimizer {
 public:
  explicit Sgd(std::vector<Param> params);
  void Step(float lr) override;
  const char* name() const override { return "sgd"; }
};

// momentum.cc: v = mu v + lr g; w -= v (Polyak 1964).
class Momentum : public Optimizer {
 public:
  Momentum(std::vector<Param> params, float momentum);
  void Step(float lr) override;
  const char* name() const override { return "momentum"; }
  std::vector<std::pair<std::string, Tensor*>> State() override;

 private:
  float momentum_;
  std::vector<Tensor> velocity_;
};

// nesterov.cc: v = mu v + g; w -= lr (g + mu v), where w is the look-ahead
// point (Sutskever et al. 2013; Bengio et al. 2012).
class Nesterov : public Optimizer {
 public:
  Nesterov(std::vector<Param> params, float momentum);
  void Step(float lr) override;
  const char* name() const override { return "nesterov"; }
  std::vector<std::pair<std::string, Tensor*>> State() override;

 private:
  float momentum_;
  std::vector<Tensor> velocity_;
};

// adagrad.cc: G += g^2; w -= lr g / (sqrt(G) + eps) (Duchi et al. 2011).
class Adagrad : public Optimizer {
 public:
  Adagrad(std::vector<Param> params, float epsilon);
  void Step(float lr) override;
  const char* name() const override { return "adagrad"; }
  std::vector<std::pair<std::string, Tensor*>> State() override;

 private:
  float epsilon_;
  std::vector<Tensor> sum_sq_;
};

// rmsprop.cc: E = rho E + (1 - rho) g^2; w -= lr g / (sqrt(E) + eps)
// (Tieleman & Hinton 2012).
class Rmsprop : public Optimizer {
 public:
  Rmsprop(std::vector<Param> params, float rho, float epsilon);
  void Step(float lr) override;
  const char* name() const override { return "rmsprop"; }
  std::vector<std::pair<std::string, Tensor*>> State() override;

 private:
  float rho_;
  float epsilon_;
  std::vector<Tensor> mean_sq_;
};

// adadelta.cc (Zeiler 2012): Eg = rho Eg + (1 - rho) g^2;
// dx = -sqrt(Edx + eps) / sqrt(Eg + eps) g; Edx = rho Edx + (1 - rho) dx^2;
// w += lr dx (lr is a multiplier, 1 in the paper).
class Adadelta : public Optimizer {
 public:
  Adadelta(std::vector<Param> params, float rho, float epsilon);
  void Step(float lr) override;
  const char* name() const override { return "adadelta"; }
  std::vector<std::pair<std::string, Tensor*>> State() override;

 private:
  float rho_;
  float epsilon_;
  std::vector<Tensor> mean_sq_;         // Eg.
  std::vector<Tensor> mean_sq_update_;  // Edx.
};

// adam.cc (Kingma & Ba 2015): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), t = step() + 1.
class Adam : public Optimizer {
 public:
  Adam(std::vector<Param> params, float beta1, float beta2, float epsilon);
  void Step(float lr) override;
  const char* name() const override { return "adam"; }
  std::vector<std::pair<std::string, Tensor*>> State() override;

 private:
  float beta1_;
  float beta2_;
  float epsilon_;
  std::vector<Tensor> m_;
  std::vector<Tensor> v_;
};

// Zero-filled tensors shaped like each parameter's value (optimizer state).
std::vector<Tensor> ZeroStateLike(const std::vector<Param>& params);
// Appends {"<param>.<slot>", &state[i]} for every parameter i to `out`.
void AppendStateSlots(const std::vector<Param>& params, const char* slot,
                      std::vector<Tensor>* state,
                      std::vector<std::pair<std::string, Tensor*>>* out);

}  // namespace nnlab

#endif  // NNLAB_CORE_OPTIM_OPTIMIZER_KINDS_H_

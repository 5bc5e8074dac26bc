// Optimizers: update a fixed list of parameters from their gradients.
//
// Each optimizer keeps per-parameter state in vectors parallel to the
// parameter list (never keyed by address) plus a step count, and exposes it
// as named tensors so checkpoints can save and restore it. Not thread-safe.
#ifndef NNLAB_CORE_OPTIM_OPTIMIZER_H_
#define NNLAB_CORE_OPTIM_OPTIMIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor/param.h"
#include "core/tensor/tensor.h"

namespace nnlab {

enum class OptimizerKind {
  kSgd,
  kMomentum,
  kNesterov,
  kAdagrad,
  kRmsprop,
  kAdadelta,
  kAdam,
};

enum class LrSchedule { kConstant, kStep, kExponential };

// Hyperparameters. A value <= 0 for lr means "the optimizer's default"
// (SGD 0.01, Momentum/Nesterov 0.01, Adagrad 0.01, RMSprop 0.001,
// Adadelta 1.0, Adam 0.001).
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  float lr = 0.0f;
  float momentum = 0.9f;  // Momentum, Nesterov.
  float rho = 0.9f;       // RMSprop decay; Adadelta uses 0.95 if rho unset.
  bool has_rho = false;
  float beta1 = 0.9f;         // Adam.
  float beta2 = 0.999f;       // Adam.
  float epsilon = 0.0f;       // <= 0: default (Adam 1e-8, Adagrad/RMSprop 1e-8
                              // ... Adadelta 1e-6).
  float weight_decay = 0.0f;  // L2: grad += weight_decay * w.
  float clip_norm = 0.0f;     // > 0: clip the global gradient norm to this.
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t decay_steps = 1000;  // kStep: multiply by decay_rate every N steps.
  float decay_rate = 0.5f;     // kStep and kExponential (lr * rate^(t/N)).
};

// Returns the lowercase name ("sgd", "momentum", ...) of `kind`.
const char* OptimizerName(OptimizerKind kind);
// Parses a lowercase name; InvalidArgument for unknown names.
absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name);
// InvalidArgument naming the field if a hyperparameter is NaN, negative or
// out of range.
absl::Status ValidateOptimizerConfig(const OptimizerConfig& config);

// The largest step count a run may be restored at (Optimizer::RestoreStep,
// Trainer::SetState). No run comes near it, and what is derived from a
// step (the next step's number, a GAN's discriminator steps, Adam's bias
// correction exponent) stays exact and cannot overflow.
inline constexpr int64_t kMaxSteps = int64_t{1} << 48;

class Optimizer {
 public:
  explicit Optimizer(std::vector<Param> params) : params_(std::move(params)) {}
  virtual ~Optimizer() = default;

  // Applies one update with learning rate `lr` to every parameter, reading
  // the gradients as they are (decay and clipping are done by the caller,
  // see ApplyWeightDecay / ClipGradNorm). Increments step().
  virtual void Step(float lr) = 0;

  virtual const char* name() const = 0;

  // Per-parameter state as named tensors ("<param>.<slot>"), owned by the
  // optimizer, for checkpoints. Restoring = copying values into them.
  virtual std::vector<std::pair<std::string, Tensor*>> State() { return {}; }

  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }
  // set_step for a count read from outside (a checkpoint):
  // InvalidArgument unless 0 <= step <= kMaxSteps.
  absl::Status RestoreStep(int64_t step);
  const std::vector<Param>& params() const { return params_; }

 protected:
  std::vector<Param> params_;
  int64_t step_ = 0;
};

// Creates the optimizer of `config.kind` over `params`.
// REQUIRES: ValidateOptimizerConfig(config) is OK.
std::unique_ptr<Optimizer> MakeOptimizer(const OptimizerConfig& config,
                                         std::vector<Param> params);

// The learning rate to use at (0-based) step `step` under `config`'s
// schedule, with the optimizer default substituted when config.lr <= 0.
float LearningRateAt(const OptimizerConfig& config, int64_t step);

// grad += weight_decay * value for every parameter.
void ApplyWeightDecay(const std::vector<Param>& params, float weight_decay);

// Global L2 norm of all gradients.
double GlobalGradNorm(const std::vector<Param>& params);

// If the global gradient norm exceeds max_norm, scales every gradient so it
// equals max_norm. Returns the norm before clipping.
double ClipGradNorm(const std::vector<Param>& params, float max_norm);

}  // namespace nnlab

#endif  // NNLAB_CORE_OPTIM_OPTIMIZER_H_

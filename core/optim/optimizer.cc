#include "core/optim/optimizer.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/optim/optimizer_kinds.h"
#include "core/status_macros.h"

namespace nnlab {

const char* OptimizerName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kMomentum:
      return "momentum";
    case OptimizerKind::kNesterov:
      return "nesterov";
    case OptimizerKind::kAdagrad:
      return "adagrad";
    case OptimizerKind::kRmsprop:
      return "rmsprop";
    case OptimizerKind::kAdadelta:
      return "adadelta";
    case OptimizerKind::kAdam:
      return "adam";
  }
  return "unknown";
}

absl::StatusOr<OptimizerKind> ParseOptimizerKind(absl::string_view name) {
  for (OptimizerKind kind :
       {OptimizerKind::kSgd, OptimizerKind::kMomentum, OptimizerKind::kNesterov,
        OptimizerKind::kAdagrad, OptimizerKind::kRmsprop,
        OptimizerKind::kAdadelta, OptimizerKind::kAdam}) {
    if (name == OptimizerName(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "optimizer.kind: unknown optimizer \"", name,
      "\" (expected sgd, momentum, nesterov, adagrad, rmsprop, adadelta or "
      "adam)"));
}

float DefaultLearningRate(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
    case OptimizerKind::kMomentum:
    case OptimizerKind::kNesterov:
    case OptimizerKind::kAdagrad:
      return 0.01f;
    case OptimizerKind::kRmsprop:
    case OptimizerKind::kAdam:
      return 0.001f;
    case OptimizerKind::kAdadelta:
      return 1.0f;
  }
  return 0.01f;
}

float DefaultEpsilon(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kAdagrad:
    case OptimizerKind::kRmsprop:
    case OptimizerKind::kAdam:
      return 1e-8f;
    case OptimizerKind::kAdadelta:
      return 1e-6f;
    case OptimizerKind::kSgd:
    case OptimizerKind::kMomentum:
    case OptimizerKind::kNesterov:
      return 0.0f;
  }
  return 0.0f;
}

namespace {

// `value` must be finite and >= 0.
absl::Status CheckNonNegative(const char* field, float value) {
  if (!std::isfinite(value) || value < 0.0f) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.", field, " must be finite and >= 0, got ", value));
  }
  return absl::OkStatus();
}

// `value` must be in [0, 1): a decay factor of a running average.
absl::Status CheckUnitInterval(const char* field, float value) {
  if (!(value >= 0.0f && value < 1.0f)) {  // Also rejects NaN.
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.", field, " must be in [0, 1), got ", value));
  }
  return absl::OkStatus();
}

bool IsKnownKind(OptimizerKind kind) {
  return kind >= OptimizerKind::kSgd && kind <= OptimizerKind::kAdam;
}

}  // namespace

absl::Status Optimizer::RestoreStep(int64_t step) {
  if (step < 0 || step > kMaxSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer step ", step, " is out of range [0, ", kMaxSteps, "]"));
  }
  step_ = step;
  return absl::OkStatus();
}

absl::Status ValidateOptimizerConfig(const OptimizerConfig& config) {
  if (!IsKnownKind(config.kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.kind: unknown optimizer kind ",
                     static_cast<int>(config.kind)));
  }
  // lr and epsilon: 0 selects the default, negative is a mistake.
  NNLAB_RETURN_IF_ERROR(CheckNonNegative("lr", config.lr));
  NNLAB_RETURN_IF_ERROR(CheckNonNegative("epsilon", config.epsilon));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval("momentum", config.momentum));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval("rho", config.rho));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval("beta1", config.beta1));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval("beta2", config.beta2));
  NNLAB_RETURN_IF_ERROR(CheckNonNegative("weight_decay", config.weight_decay));
  NNLAB_RETURN_IF_ERROR(CheckNonNegative("clip_norm", config.clip_norm));
  switch (config.schedule) {
    case LrSchedule::kConstant:
      // decay_* are unused; only reject a NaN, which is never intended.
      if (std::isnan(config.decay_rate)) {
        return absl::InvalidArgumentError(
            "optimizer.decay_rate must not be NaN");
      }
      break;
    case LrSchedule::kStep:
    case LrSchedule::kExponential:
      if (config.decay_steps <= 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer.decay_steps must be > 0, got ", config.decay_steps));
      }
      if (!(config.decay_rate > 0.0f && config.decay_rate <= 1.0f)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "optimizer.decay_rate must be in (0, 1], got ", config.decay_rate));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("optimizer.schedule: unknown schedule ",
                       static_cast<int>(config.schedule)));
  }
  return absl::OkStatus();
}

std::unique_ptr<Optimizer> MakeOptimizer(const OptimizerConfig& config,
                                         std::vector<Param> params) {
  NNLAB_CHECK(IsKnownKind(config.kind));
  const float eps =
      config.epsilon > 0.0f ? config.epsilon : DefaultEpsilon(config.kind);
  switch (config.kind) {
    case OptimizerKind::kSgd:
      return std::make_unique<Sgd>(std::move(params));
    case OptimizerKind::kMomentum:
      return std::make_unique<Momentum>(std::move(params), config.momentum);
    case OptimizerKind::kNesterov:
      return std::make_unique<Nesterov>(std::move(params), config.momentum);
    case OptimizerKind::kAdagrad:
      return std::make_unique<Adagrad>(std::move(params), eps);
    case OptimizerKind::kRmsprop:
      return std::make_unique<Rmsprop>(std::move(params), config.rho, eps);
    case OptimizerKind::kAdadelta:
      return std::make_unique<Adadelta>(
          std::move(params), config.has_rho ? config.rho : kAdadeltaDefaultRho,
          eps);
    case OptimizerKind::kAdam:
      return std::make_unique<Adam>(std::move(params), config.beta1,
                                    config.beta2, eps);
  }
  return nullptr;  // Unreachable: the kind was checked above.
}

float LearningRateAt(const OptimizerConfig& config, int64_t step) {
  const double lr =
      config.lr > 0.0f ? config.lr : DefaultLearningRate(config.kind);
  switch (config.schedule) {
    case LrSchedule::kConstant:
      return static_cast<float>(lr);
    case LrSchedule::kStep:
      return static_cast<float>(
          lr * std::pow(static_cast<double>(config.decay_rate),
                        static_cast<double>(step / config.decay_steps)));
    case LrSchedule::kExponential:
      return static_cast<float>(
          lr * std::pow(static_cast<double>(config.decay_rate),
                        static_cast<double>(step) /
                            static_cast<double>(config.decay_steps)));
  }
  return static_cast<float>(lr);
}

void ApplyWeightDecay(const std::vector<Param>& params, float weight_decay) {
  if (weight_decay == 0.0f) return;
  for (const Param& p : params) {
    NNLAB_CHECK(p.value->size() == p.grad->size());
    const float* __restrict w = p.value->data();
    float* __restrict g = p.grad->data();
    const int64_t n = p.value->size();
    for (int64_t i = 0; i < n; ++i) g[i] += weight_decay * w[i];
  }
}

double GlobalGradNorm(const std::vector<Param>& params) {
  double sum_sq = 0.0;
  for (const Param& p : params) sum_sq += p.grad->SquaredNorm();
  return std::sqrt(sum_sq);
}

double ClipGradNorm(const std::vector<Param>& params, float max_norm) {
  const double norm = GlobalGradNorm(params);
  // A non-finite norm cannot be fixed by scaling (inf * 0 is NaN); the
  // caller sees it in the returned value. max_norm <= 0 means "no clipping".
  if (!(max_norm > 0.0f) || !std::isfinite(norm) || norm <= max_norm) {
    return norm;
  }
  const float scale = static_cast<float>(max_norm / norm);
  for (const Param& p : params) {
    float* __restrict g = p.grad->data();
    const int64_t n = p.grad->size();
    for (int64_t i = 0; i < n; ++i) g[i] *= scale;
  }
  return norm;
}

std::vector<Tensor> ZeroStateLike(const std::vector<Param>& params) {
  std::vector<Tensor> state;
  state.reserve(params.size());
  for (const Param& p : params) state.emplace_back(p.value->shape());
  return state;
}

void AppendStateSlots(const std::vector<Param>& params, const char* slot,
                      std::vector<Tensor>* state,
                      std::vector<std::pair<std::string, Tensor*>>* out) {
  NNLAB_CHECK(state->size() == params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    out->emplace_back(absl::StrCat(params[i].name, ".", slot), &(*state)[i]);
  }
}

}  // namespace nnlab

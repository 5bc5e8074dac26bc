#include "core/train/run_state.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor/rng.h"

namespace nnlab {
namespace {

// A trainer's tensors by (prefixed) name, in the order RunState keeps them.
using Targets = std::vector<std::pair<std::string, Tensor*>>;

void AppendModel(Model* model, const std::string& prefix, Targets* weights,
                 Targets* buffers) {
  for (const Param& p : model->Params()) {
    weights->emplace_back(prefix + p.name, p.value);
  }
  for (const auto& [name, t] : model->Buffers()) {
    buffers->emplace_back(prefix + name, t);
  }
}

void AppendSlots(Optimizer* opt, const std::string& prefix, Targets* slots) {
  for (const auto& [name, t] : opt->State()) {
    slots->emplace_back(prefix + name, t);
  }
}

void CopyOut(const Targets& from, RunState::NamedTensors* to) {
  to->clear();
  to->reserve(from.size());
  for (const auto& [name, t] : from) to->emplace_back(name, t->Clone());
}

absl::Status Check(const RunState::NamedTensors& src, const Targets& dst,
                   const char* what) {
  if (src.size() != dst.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the trainer has ", dst.size(),
                     " tensors, the state ", src.size()));
  }
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i].first != dst[i].first) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "[", i, "]: expected \"", dst[i].first,
                       "\", got \"", src[i].first, "\""));
    }
    if (src[i].second.shape() != dst[i].second->shape()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " ", src[i].first, ": shape ",
                       ShapeToString(src[i].second.shape()),
                       " does not match the trainer's ",
                       ShapeToString(dst[i].second->shape())));
    }
  }
  return absl::OkStatus();
}

void CopyIn(const RunState::NamedTensors& src, const Targets& dst) {
  for (size_t i = 0; i < src.size(); ++i)
    dst[i].second->CopyFrom(src[i].second);
}

// Parses `state` into a scratch RNG, so a bad one is found before anything
// is changed.
absl::Status CheckRng(const std::string& state, const char* what) {
  if (state.empty()) return absl::OkStatus();
  Rng scratch;
  absl::Status s = scratch.Restore(state);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
  }
  return absl::OkStatus();
}

void RestoreRng(const std::string& state, Rng* rng) {
  if (state.empty()) return;
  absl::Status s = rng->Restore(state);
  NNLAB_CHECK(s.ok());  // CheckRng accepted it.
}

absl::Status CheckStep(int64_t step, const char* what) {
  if (step < 0 || step > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be in [0, ", kMaxSteps, "], got ", step));
  }
  return absl::OkStatus();
}

}  // namespace

RunState RunState::Capture(Trainer* trainer) {
  RunState s;
  Targets weights, buffers, slots;
  AppendModel(trainer->model(), "", &weights, &buffers);
  AppendSlots(trainer->optimizer(), "", &slots);
  CopyOut(weights, &s.weights);
  CopyOut(buffers, &s.buffers);
  CopyOut(slots, &s.optimizer_slots);
  const TrainerState& ts = trainer->state();
  s.step = ts.step;
  s.epoch = ts.epoch;
  s.batch_in_epoch = ts.batch_in_epoch;
  s.optimizer_step = trainer->optimizer()->step();
  s.shuffle_rng = ts.shuffle_rng;
  s.model_rng = trainer->model()->rng()->Save();
  return s;
}

RunState RunState::Capture(GanTrainer* gan) {
  RunState s;
  Targets weights, buffers, slots;
  AppendModel(gan->generator(), "generator/", &weights, &buffers);
  AppendModel(gan->discriminator(), "discriminator/", &weights, &buffers);
  AppendSlots(gan->g_optimizer(), "generator/", &slots);
  AppendSlots(gan->d_optimizer(), "discriminator/", &slots);
  CopyOut(weights, &s.weights);
  CopyOut(buffers, &s.buffers);
  CopyOut(slots, &s.optimizer_slots);
  s.step = gan->step();
  s.optimizer_step = gan->g_optimizer()->step();
  s.model_rng = gan->generator()->rng()->Save();
  s.discriminator_rng = gan->discriminator()->rng()->Save();
  s.gan_rng = gan->rng()->Save();
  return s;
}

absl::Status RunState::Restore(Trainer* trainer) const {
  Targets weights, buffers, slots;
  AppendModel(trainer->model(), "", &weights, &buffers);
  AppendSlots(trainer->optimizer(), "", &slots);
  NNLAB_RETURN_IF_ERROR(Check(this->weights, weights, "weights"));
  NNLAB_RETURN_IF_ERROR(Check(this->buffers, buffers, "buffers"));
  NNLAB_RETURN_IF_ERROR(Check(optimizer_slots, slots, "optimizer_slots"));
  NNLAB_RETURN_IF_ERROR(CheckStep(step, "step"));
  NNLAB_RETURN_IF_ERROR(CheckStep(optimizer_step, "optimizer_step"));
  if (epoch < 0 || batch_in_epoch < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("epoch and batch_in_epoch must be >= 0, got ", epoch,
                     " and ", batch_in_epoch));
  }
  NNLAB_RETURN_IF_ERROR(CheckRng(shuffle_rng, "shuffle_rng"));
  NNLAB_RETURN_IF_ERROR(CheckRng(model_rng, "model_rng"));

  CopyIn(this->weights, weights);
  CopyIn(this->buffers, buffers);
  CopyIn(optimizer_slots, slots);
  TrainerState ts;
  ts.step = step;
  ts.epoch = epoch;
  ts.batch_in_epoch = batch_in_epoch;
  ts.shuffle_rng = shuffle_rng;
  NNLAB_CHECK(trainer->SetState(ts).ok());  // Checked above.
  NNLAB_CHECK(trainer->optimizer()->RestoreStep(optimizer_step).ok());
  RestoreRng(model_rng, trainer->model()->rng());
  return absl::OkStatus();
}

absl::Status RunState::Restore(GanTrainer* gan) const {
  Targets weights, buffers, slots;
  AppendModel(gan->generator(), "generator/", &weights, &buffers);
  AppendModel(gan->discriminator(), "discriminator/", &weights, &buffers);
  AppendSlots(gan->g_optimizer(), "generator/", &slots);
  AppendSlots(gan->d_optimizer(), "discriminator/", &slots);
  NNLAB_RETURN_IF_ERROR(Check(this->weights, weights, "weights"));
  NNLAB_RETURN_IF_ERROR(Check(this->buffers, buffers, "buffers"));
  NNLAB_RETURN_IF_ERROR(Check(optimizer_slots, slots, "optimizer_slots"));
  NNLAB_RETURN_IF_ERROR(CheckStep(step, "step"));
  NNLAB_RETURN_IF_ERROR(CheckStep(optimizer_step, "optimizer_step"));
  // d_steps <= 1000 and step <= 2^48: the product cannot overflow.
  const int64_t d_step = step * gan->options().d_steps;
  NNLAB_RETURN_IF_ERROR(CheckStep(d_step, "step * d_steps"));
  NNLAB_RETURN_IF_ERROR(CheckRng(model_rng, "model_rng"));
  NNLAB_RETURN_IF_ERROR(CheckRng(discriminator_rng, "discriminator_rng"));
  NNLAB_RETURN_IF_ERROR(CheckRng(gan_rng, "gan_rng"));

  CopyIn(this->weights, weights);
  CopyIn(this->buffers, buffers);
  CopyIn(optimizer_slots, slots);
  NNLAB_CHECK(gan->RestoreStep(step).ok());
  NNLAB_CHECK(gan->g_optimizer()->RestoreStep(optimizer_step).ok());
  NNLAB_CHECK(gan->d_optimizer()->RestoreStep(d_step).ok());
  RestoreRng(model_rng, gan->generator()->rng());
  RestoreRng(discriminator_rng, gan->discriminator()->rng());
  RestoreRng(gan_rng, gan->rng());
  return absl::OkStatus();
}

}  // namespace nnlab

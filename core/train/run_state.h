// RunState: everything a training run needs to continue exactly where it
// stopped: what a checkpoint holds. One struct for a Trainer and for a
// GanTrainer; the server's checkpoints are this struct, written and read
// by one pair of functions (RunStateToProto / RunStateFromProto in
// server/weights.h: weights and buffers as the ModelFile's tensors, the
// rest as the checkpoint's fields).
//
// Continuing = Capture, build a fresh trainer with the same options and
// spec, Restore, Run: with the same thread count the losses then equal
// those of an uninterrupted run bit for bit.
#ifndef NNLAB_CORE_TRAIN_RUN_STATE_H_
#define NNLAB_CORE_TRAIN_RUN_STATE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/tensor/tensor.h"
#include "core/train/gan_trainer.h"
#include "core/train/trainer.h"

namespace nnlab {

struct RunState {
  using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

  // The model's parameters and buffers (batch-norm running statistics) in
  // Model::Params() / Buffers() order. A GAN's names carry "generator/" or
  // "discriminator/" in front, generator first.
  NamedTensors weights;
  NamedTensors buffers;
  // Optimizer::State() slots ("<param>.<slot>"), prefixed like `weights`.
  NamedTensors optimizer_slots;

  // Trainer: optimizer steps taken; GAN: generator steps taken.
  int64_t step = 0;
  // Trainer: TrainerState's epoch and batch_in_epoch. GAN: 0 (a GAN run
  // derives its epoch from the step and GanRunOptions::steps_per_epoch).
  int epoch = 0;
  int64_t batch_in_epoch = 0;
  // Trainer: the optimizer's step count; GAN: the generator optimizer's
  // (the discriminator's is step * d_steps).
  int64_t optimizer_step = 0;

  // Rng::Save() states. Restore leaves an RNG as it is where its string
  // is empty (a run that never started shuffling; an old checkpoint).
  std::string shuffle_rng;        // Trainer: the shuffle at epoch start.
  std::string model_rng;          // Trainer: the model's; GAN: generator's.
  std::string discriminator_rng;  // GAN only.
  std::string gan_rng;            // GAN only: noise and real-batch draws.

  // Deep copies of the trainer's state. Call between steps (from a Run
  // callback or outside Run), never during one.
  static RunState Capture(Trainer* trainer);
  static RunState Capture(GanTrainer* gan);

  // Copies this state into a trainer built with the same model spec and
  // optimizer kinds. InvalidArgument naming the first tensor whose name,
  // count or shape differs, a bad RNG string or a step out of range; the
  // trainer is then left unchanged.
  absl::Status Restore(Trainer* trainer) const;
  absl::Status Restore(GanTrainer* gan) const;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_RUN_STATE_H_

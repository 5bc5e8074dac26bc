// Trainer: mini-batch training of a Model with an Optimizer, producing
// per-step statistics. The caller (an example, a test, the server's job
// manager) observes every step through callbacks and can stop the run
// between mini-batches; the core never learns who is watching.
#ifndef NNLAB_CORE_TRAIN_TRAINER_H_
#define NNLAB_CORE_TRAIN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/optim/optimizer.h"
#include "core/train/run.h"
#include "core/train/stats.h"

namespace nnlab {

struct TrainOptions {
  OptimizerConfig optimizer;
  int epochs = 1;
  int64_t batch_size = 32;
  // Per-layer statistics every N steps (1 = every step, 0 = never).
  int64_t stats_every = 1;
  // Evaluate on the test set every N steps (0 = only at each epoch's end).
  int64_t eval_every_steps = 0;
  uint64_t shuffle_seed = 1;
  bool shuffle = true;
  // When Run calls Callbacks::on_checkpoint (default: never).
  RunCadence checkpoints;
};

// InvalidArgument naming the field for bad options.
absl::Status ValidateTrainOptions(const TrainOptions& options);

struct EvalResult {
  double loss = 0;
  double accuracy = -1;  // -1 for non-classifiers.
  int64_t samples = 0;
};

// Mean loss and accuracy of `model` (eval mode) over all of `data`.
absl::StatusOr<EvalResult> Evaluate(Model* model, const Dataset& data,
                                    int64_t batch_size = 256);

// Where a run is; enough to resume it exactly (with the model's weights,
// buffers, RNG and the optimizer state, which the checkpoint also saves).
struct TrainerState {
  int64_t step = 0;            // Optimizer steps taken.
  int epoch = 0;               // Current epoch (0-based).
  int64_t batch_in_epoch = 0;  // Batches of `epoch` already done.
  std::string shuffle_rng;     // Shuffle RNG state at the start of `epoch`.
};

class Trainer {
 public:
  // Validates options and the model/data pairing.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      Model* model, const TrainOptions& options);

  // One optimizer step on a batch: forward, loss, backward, weight decay,
  // clipping, update. Per-layer statistics if `layer_stats`. Returns
  // OutOfRange naming the step and the layer if the loss or a gradient is
  // not finite (the parameters are then left unchanged).
  absl::Status TrainStep(const Tensor& x, const Tensor& y, bool layer_stats,
                         StepStats* stats);

  struct Callbacks {
    // After every step. A non-OK status stops the run and is returned.
    std::function<absl::Status(const StepStats&)> on_step;
    // After on_step when options.checkpoints is due (take a RunState then;
    // it resumes after this step). A non-OK status stops the run.
    std::function<absl::Status(const StepStats&)> on_checkpoint;
    // After each evaluation on the test set.
    std::function<void(const StepStats& at, const EvalResult&)> on_eval;
    // Polled between mini-batches; true stops the run with Cancelled.
    std::function<bool()> should_stop;
  };

  // Trains for options.epochs epochs over `train`, from state() on,
  // evaluating on `test` (if given) at each epoch's end and every
  // eval_every_steps steps.
  absl::Status Run(const Dataset& train, const Dataset* test,
                   const Callbacks& callbacks);

  const TrainerState& state() const { return state_; }
  absl::Status SetState(const TrainerState& state);
  Optimizer* optimizer() { return optimizer_.get(); }
  Model* model() { return model_; }
  const TrainOptions& options() const { return options_; }

 private:
  Trainer(Model* model, const TrainOptions& options);

  Model* model_;
  TrainOptions options_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<Param> params_;
  TrainerState state_;
  Tensor grad_out_;
  std::vector<Tensor> weights_before_;  // Reused for update ratios.
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_TRAINER_H_

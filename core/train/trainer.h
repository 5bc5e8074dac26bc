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
#include "core/train/collective.h"
#include "core/train/run.h"
#include "core/train/stats.h"

namespace nnlab {

struct TrainOptions {
  OptimizerConfig optimizer;
  int epochs = 1;
  int64_t batch_size = 32;
  // Data-parallel only: samples per step over all replicas (0: batch_size x
  // the collective's size). Fixed for a whole run, it lets a run continue
  // on fewer replicas with the same steps, data order and averaged
  // gradient: each replica's slice grows. At most kMaxBatchSize.
  int64_t global_batch_size = 0;
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

// Evaluate over all of `data` with the work split across `collective`'s
// replicas (nullptr or size 1: Evaluate). Replica r of N evaluates the
// contiguous slice [r*n/N, (r+1)*n/N) of the n samples (empty when n < N)
// and one AllreduceAverage combines the sums (loss, correct, samples,
// scored), so every replica returns the result for all of `data`: equal to
// Evaluate's up to float summation order (the loss sum travels as a float,
// about 1e-6 relative; counts are rounded back exactly up to 2^22 samples).
// REQUIRES: every replica calls it at the same point with the same `data`
// and batch_size. InvalidArgument on every replica when `data` is empty.
absl::StatusOr<EvalResult> EvaluateSharded(Model* model, const Dataset& data,
                                           int64_t batch_size,
                                           Collective* collective);

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
  //
  // Data-parallel (set_collective with size() = N > 1): every replica
  // shuffles with the same seed, the global batch is global_batch_size
  // (default N x batch_size) and replica r trains on slice r of it
  // (BatchIterator::SetShard). Each step averages the gradients, weighted by
  // each slice's size, together with the loss and the correct count in one
  // allreduce, so loss, accuracy and the update equal those of one process at
  // the global batch up to summation order. Weight decay, clipping and the
  // optimizer step come after the allreduce and are identical everywhere.
  // Batch norm uses each replica's own batch statistics (and running
  // statistics), as PyTorch's DDP does by default; dropout masks come from
  // each replica's model RNG. Only rank 0 computes per-layer statistics (on
  // the averaged gradients). Evaluation is shared (EvaluateSharded): pass the
  // same `test` on every replica (or nullptr on all); each evaluates its
  // slice and all get the full result, so no replica waits out a whole
  // evaluation in the next allreduce. The caller decides who reports it
  // (on_eval) and who checkpoints (on_checkpoint on rank 0 only). An error on
  // one replica (bad input, cancellation) makes the others' next allreduce
  // fail: stop all alike.
  absl::Status Run(const Dataset& train, const Dataset* test,
                   const Callbacks& callbacks);

  // Averages gradients over `collective`'s replicas (nullptr or size 1:
  // one process, the default). Allocates the flat exchange buffer once.
  // REQUIRES: not during Run; `collective` outlives the trainer's runs.
  void set_collective(Collective* collective);
  Collective* collective() const { return collective_; }

  const TrainerState& state() const { return state_; }
  absl::Status SetState(const TrainerState& state);
  Optimizer* optimizer() { return optimizer_.get(); }
  Model* model() { return model_; }
  const TrainOptions& options() const { return options_; }

 private:
  Trainer(Model* model, const TrainOptions& options);

  // One step on this replica's `x`, `y` (local_n samples; 0 = this replica
  // has no part of the batch) of a global batch of global_n samples.
  // REQUIRES: CheckInput(x) is OK when local_n > 0.
  absl::Status Step(const Tensor& x, const Tensor& y, int64_t local_n,
                    int64_t global_n, bool layer_stats, StepStats* stats);
  bool distributed() const {
    return collective_ != nullptr && collective_->size() > 1;
  }

  Model* model_;
  TrainOptions options_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<Param> params_;
  TrainerState state_;
  Tensor grad_out_;
  std::vector<Tensor> weights_before_;  // Reused for update ratios.
  Collective* collective_ = nullptr;
  // All gradients, then loss and accuracy: one allreduce per step.
  std::vector<float> exchange_;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_TRAINER_H_

// Generative adversarial networks (Goodfellow et al. 2014): a generator G
// and a discriminator D, any two Sequential models, trained by alternating
// updates on min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].
//
// One GanTrainer::Step is k discriminator steps (each on a real and a
// generated batch) followed by one generator step, each network with its
// own optimizer. The generator loss is non-saturating by default
// (minimise -log D(G(z)), Goodfellow et al. 2014, section 3) or the minimax
// form (minimise log(1 - D(G(z)))). At the optimum D(x) = 1/2 everywhere.
//
// Not thread-safe: one thread drives a GanTrainer at a time.
#ifndef NNLAB_CORE_TRAIN_GAN_TRAINER_H_
#define NNLAB_CORE_TRAIN_GAN_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/sequence_data.h"
#include "core/model/model.h"
#include "core/optim/optimizer.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"
#include "core/train/run.h"

namespace nnlab {

enum class NoiseKind {
  kNormal,   // z ~ N(0, I).
  kUniform,  // z ~ U(-1, 1)^d.
};

enum class GanLossKind {
  kNonSaturating,  // G minimises -log D(G(z)).
  kMinimax,        // G minimises log(1 - D(G(z))).
};

struct GanOptions {
  // Generator: input_shape [noise_dim] (the noise), output shape = the data's
  // per-sample shape. Its `loss` field is not used.
  ModelSpec generator;
  // Discriminator: input_shape = the generator's output shape, output [1].
  // The output is a logit (sigmoid applied in the loss), or a probability
  // if the last layer is "sigmoid". `loss` must be kSigmoidCrossEntropy.
  ModelSpec discriminator;
  NoiseKind noise = NoiseKind::kNormal;
  GanLossKind generator_loss = GanLossKind::kNonSaturating;
  int d_steps = 1;  // k: discriminator steps per generator step, >= 1.
  int64_t batch_size = 64;
  // Each network's optimizer; clip_norm and weight_decay apply as in
  // Trainer::TrainStep.
  OptimizerConfig g_optimizer;
  OptimizerConfig d_optimizer;
  uint64_t seed = 1;  // Noise and real-batch draws.
};

// Statistics of one Step. Discriminator figures are means over its k steps.
struct GanStepStats {
  int64_t step = 0;          // 1-based count of generator steps.
  int epoch = 0;             // 0-based epoch of this step (set by Run only).
  double learning_rate = 0;  // The generator's, at this step.
  double d_loss = 0;         // -mean log D(x) - mean log(1 - D(G(z))).
  double g_loss = 0;         // The generator loss (its kind) at the G step.
  double d_real = 0;         // Mean D(x) on the real batches.
  double d_fake = 0;         // Mean D(G(z)) on the generated batches (D phase).
  double d_grad_norm = 0;    // ||dL_D/dtheta_D|| before clipping.
  double g_grad_norm = 0;    // ||dL_G/dtheta_G|| before clipping.
};

// How long a GanTrainer::Run goes and when its callbacks fire.
struct GanRunOptions {
  // Run until step() == total_steps (nothing to do if it already is).
  int64_t total_steps = 0;
  // Generator steps per epoch (the server's: real batches per pass over the
  // data), for GanStepStats::epoch and the at_epoch_end cadences. >= 1.
  int64_t steps_per_epoch = 1;
  RunCadence events = RunCadence::Every(1);  // Callbacks::on_step.
  RunCadence samples;                        // Callbacks::on_sample.
  RunCadence checkpoints;                    // Callbacks::on_checkpoint.
};

class GanTrainer {
 public:
  // Builds and validates both models: InvalidArgument naming the field for
  // a bad spec, a generator input that is not a [noise_dim] vector, a
  // generator output shape different from the discriminator input shape,
  // a discriminator output other than [1], d_steps < 1, batch_size out of
  // [1, 65536], or a bad optimizer config.
  static absl::StatusOr<std::unique_ptr<GanTrainer>> Create(
      const GanOptions& options);

  // One generator step preceded by options.d_steps discriminator steps,
  // drawing real batches from `real`. InvalidArgument if the sampler's
  // samples do not have the discriminator's input shape; OutOfRange if a
  // loss or gradient is not finite (the offending update is skipped).
  absl::Status Step(const Sampler& real, GanStepStats* stats);

  // Like Trainer::Callbacks. Each runs after a step when its cadence in
  // GanRunOptions is due, in this order: on_step, on_checkpoint, on_sample.
  // A non-OK status stops the run and is returned.
  struct Callbacks {
    std::function<absl::Status(const GanStepStats&)> on_step;
    // Take a checkpoint (RunState::Capture) here.
    std::function<absl::Status(const GanStepStats&)> on_checkpoint;
    // Evaluate or draw samples (Generate shifts the noise stream, so a run
    // that samples differs from one that does not).
    std::function<absl::Status(const GanStepStats&)> on_sample;
    // Polled before each step; true stops the run with Cancelled.
    std::function<bool()> should_stop;
  };

  // Steps from step() up to options.total_steps, drawing real batches from
  // `real`. InvalidArgument for total_steps < 0 or steps_per_epoch < 1;
  // otherwise Step's errors, a callback's, or Cancelled from should_stop.
  absl::Status Run(const Sampler& real, const GanRunOptions& options,
                   const Callbacks& callbacks);

  // n generated samples [n, data shape...] (generator in eval mode; the
  // noise comes from the trainer's RNG, so it shifts later draws).
  void Generate(int64_t n, Tensor* out);
  // D's probabilities that each row of `x` [n, data shape...] is real, as
  // [n, 1] (eval mode). REQUIRES: x has the discriminator's input shape.
  void Discriminate(const Tensor& x, Tensor* probs);

  Model* generator() { return g_.get(); }
  Model* discriminator() { return d_.get(); }
  Optimizer* g_optimizer() { return g_opt_.get(); }
  Optimizer* d_optimizer() { return d_opt_.get(); }
  const GanOptions& options() const { return options_; }
  int64_t step() const { return step_; }
  // Sets step() for a run read back from a checkpoint (RunState::Restore):
  // InvalidArgument unless 0 <= step <= kMaxSteps.
  absl::Status RestoreStep(int64_t step);
  // The noise and real-batch draws. Save and restore it (with both models'
  // RNGs, weights and optimizers) to continue a run exactly.
  Rng* rng() { return &rng_; }
  int64_t noise_dim() const { return options_.generator.input_shape[0]; }

 private:
  GanTrainer() = default;
  void SampleNoise(int64_t n);
  // D's loss against label `real` on outputs `out`; writes dLoss/dout.
  // `minimax_g`: the generator's minimax loss log(1 - D) instead.
  double DiscriminatorLoss(const Tensor& out, bool real, bool minimax_g,
                           Tensor* grad, double* mean_prob) const;
  absl::Status Update(const std::vector<Param>& params,
                      const OptimizerConfig& config, Optimizer* opt,
                      const char* who, double* norm);

  GanOptions options_;
  std::unique_ptr<Model> g_, d_;
  std::unique_ptr<Optimizer> g_opt_, d_opt_;
  std::vector<Param> g_params_, d_params_;
  bool d_outputs_probability_ = false;
  Rng rng_;
  int64_t step_ = 0;
  // Reused batch buffers.
  Tensor z_, real_, unused_, grad_, grad_fake_;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_GAN_TRAINER_H_

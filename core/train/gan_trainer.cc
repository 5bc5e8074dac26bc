#include "core/train/gan_trainer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

// log(1 + e^z) without overflow.
double Softplus(double z) {
  return std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GanTrainer>> GanTrainer::Create(
    const GanOptions& options) {
  if (options.d_steps < 1 || options.d_steps > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("d_steps: must be in [1, 1000], got ", options.d_steps));
  }
  if (options.batch_size < 1 || options.batch_size > kMaxBatchSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be in [1, ", kMaxBatchSize, "], got ",
                     options.batch_size));
  }
  if (options.generator.input_shape.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generator.input_shape: the noise must be a vector [noise_dim], got ",
        ShapeToString(options.generator.input_shape)));
  }
  if (options.discriminator.loss != LossKind::kSigmoidCrossEntropy) {
    return absl::InvalidArgumentError(
        "discriminator.loss: must be sigmoid cross-entropy (D outputs the "
        "probability, or its logit, that a sample is real)");
  }
  auto with_prefix = [](const char* who, const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(who, ": ", s.message()));
  };
  if (absl::Status s = ValidateOptimizerConfig(options.g_optimizer); !s.ok()) {
    return with_prefix("g_optimizer", s);
  }
  if (absl::Status s = ValidateOptimizerConfig(options.d_optimizer); !s.ok()) {
    return with_prefix("d_optimizer", s);
  }
  std::unique_ptr<GanTrainer> gan(new GanTrainer());
  gan->options_ = options;
  // The generator's loss is never used; any kind its output allows will do.
  ModelSpec g_spec = options.generator;
  g_spec.loss = LossKind::kMse;
  auto g = Model::Build(g_spec);
  if (!g.ok()) return with_prefix("generator", g.status());
  auto d = Model::Build(options.discriminator);
  if (!d.ok()) return with_prefix("discriminator", d.status());
  gan->g_ = std::move(g).value();
  gan->d_ = std::move(d).value();
  const Shape& g_out = gan->g_->output_shape();
  const Shape& d_in = gan->d_->input_shape();
  if (g_out != d_in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "generator output shape ", ShapeToString(g_out),
        " does not match the discriminator input shape ", ShapeToString(d_in)));
  }
  if (gan->d_->output_shape() != Shape{1}) {
    return absl::InvalidArgumentError(absl::StrCat(
        "discriminator: output must be [1] (one score per sample), got ",
        ShapeToString(gan->d_->output_shape())));
  }
  const LayerStack& dl = gan->d_->layers();
  gan->d_outputs_probability_ = dl.layer(dl.size() - 1)->kind() == "sigmoid";
  gan->g_params_ = gan->g_->Params();
  gan->d_params_ = gan->d_->Params();
  gan->g_opt_ = MakeOptimizer(options.g_optimizer, gan->g_params_);
  gan->d_opt_ = MakeOptimizer(options.d_optimizer, gan->d_params_);
  gan->rng_.Seed(options.seed);
  return gan;
}

void GanTrainer::SampleNoise(int64_t n) {
  const int64_t d = noise_dim();
  z_.Resize({n, d});
  float* z = z_.data();
  if (options_.noise == NoiseKind::kNormal) {
    rng_.FillNormal(z, n * d);
  } else {
    for (int64_t i = 0; i < n * d; ++i) z[i] = rng_.Uniform(-1.0f, 1.0f);
  }
}

double GanTrainer::DiscriminatorLoss(const Tensor& out, bool real,
                                     bool minimax_g, Tensor* grad,
                                     double* mean_prob) const {
  const int64_t n = out.dim(0);
  grad->Resize(out.shape());
  const double inv_n = 1.0 / double(n);
  double loss = 0, prob = 0;
  for (int64_t i = 0; i < n; ++i) {
    double g;
    if (!d_outputs_probability_) {
      // Logit z, p = sigmoid(z): -log p = softplus(-z), -log(1-p) =
      // softplus(z); their z-derivatives are p - 1 and p.
      const double z = out[i];
      const double p = 1.0 / (1.0 + std::exp(-z));
      prob += p;
      if (minimax_g) {
        loss -= Softplus(z);  // log(1 - p).
        g = -p;
      } else if (real) {
        loss += Softplus(-z);
        g = p - 1.0;
      } else {
        loss += Softplus(z);
        g = p;
      }
    } else {
      // Probabilities: clamp so a saturated D gives a finite cost.
      const double eps = 1e-7;
      const double p = std::min(std::max(double(out[i]), eps), 1.0 - eps);
      prob += out[i];
      if (minimax_g) {
        loss += std::log(1.0 - p);
        g = -1.0 / (1.0 - p);
      } else if (real) {
        loss -= std::log(p);
        g = -1.0 / p;
      } else {
        loss -= std::log(1.0 - p);
        g = 1.0 / (1.0 - p);
      }
    }
    (*grad)[i] = static_cast<float>(g * inv_n);
  }
  *mean_prob = prob * inv_n;
  return loss * inv_n;
}

absl::Status GanTrainer::Update(const std::vector<Param>& params,
                                const OptimizerConfig& config, Optimizer* opt,
                                const char* who, double* norm) {
  if (config.weight_decay > 0) ApplyWeightDecay(params, config.weight_decay);
  *norm = GlobalGradNorm(params);
  if (!std::isfinite(*norm)) {
    return absl::OutOfRangeError(absl::StrCat(
        "GAN step ", step_ + 1, ": ", who,
        " gradient is not finite; lower the learning rate or clip"));
  }
  if (config.clip_norm > 0) ClipGradNorm(params, config.clip_norm);
  opt->Step(LearningRateAt(config, opt->step()));
  return absl::OkStatus();
}

absl::Status GanTrainer::Step(const Sampler& real, GanStepStats* stats) {
  if (real.sample_shape() != d_->input_shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "real samples have shape ", ShapeToString(real.sample_shape()),
        " but the discriminator takes ", ShapeToString(d_->input_shape())));
  }
  const int64_t b = options_.batch_size;
  LayerStack& g = g_->layers();
  LayerStack& d = d_->layers();
  GanStepStats s;

  // Discriminator: ascend log D(x) + log(1 - D(G(z))), k times.
  for (int k = 0; k < options_.d_steps; ++k) {
    real.Sample(b, &rng_, &real_, nullptr);
    SampleNoise(b);
    const Tensor& fake = g.Forward(z_, Mode::kTrain);
    d_->ZeroGrad();
    double p_real, p_fake;
    const double l_real =
        DiscriminatorLoss(d.Forward(real_, Mode::kTrain),
                          /*real=*/true, false, &grad_, &p_real);
    d.Backward(grad_, nullptr);
    const double l_fake =
        DiscriminatorLoss(d.Forward(fake, Mode::kTrain),
                          /*real=*/false, false, &grad_, &p_fake);
    d.Backward(grad_, nullptr);
    const double loss = l_real + l_fake;
    if (!std::isfinite(loss)) {
      return absl::OutOfRangeError(absl::StrCat(
          "GAN step ", step_ + 1, ": discriminator loss is ", loss));
    }
    double norm;
    NNLAB_RETURN_IF_ERROR(Update(d_params_, options_.d_optimizer, d_opt_.get(),
                                 "discriminator", &norm));
    s.d_loss += loss;
    s.d_real += p_real;
    s.d_fake += p_fake;
    s.d_grad_norm += norm;
  }
  const double inv_k = 1.0 / options_.d_steps;
  s.d_loss *= inv_k;
  s.d_real *= inv_k;
  s.d_fake *= inv_k;
  s.d_grad_norm *= inv_k;

  // Generator: through D (its weights fixed) into G. D's gradients are
  // overwritten here and zeroed again before its next step.
  SampleNoise(b);
  g_->ZeroGrad();
  const Tensor& fake = g.Forward(z_, Mode::kTrain);
  const bool minimax = options_.generator_loss == GanLossKind::kMinimax;
  double p_fake;
  // Non-saturating: G wants D to call its samples real.
  const double g_loss =
      DiscriminatorLoss(d.Forward(fake, Mode::kTrain),
                        /*real=*/true, minimax, &grad_, &p_fake);
  if (!std::isfinite(g_loss)) {
    return absl::OutOfRangeError(
        absl::StrCat("GAN step ", step_ + 1, ": generator loss is ", g_loss));
  }
  d.Backward(grad_, &grad_fake_);
  g.Backward(grad_fake_, nullptr);
  NNLAB_RETURN_IF_ERROR(Update(g_params_, options_.g_optimizer, g_opt_.get(),
                               "generator", &s.g_grad_norm));
  s.g_loss = g_loss;
  s.learning_rate = LearningRateAt(options_.g_optimizer, step_);
  s.step = ++step_;
  *stats = s;
  return absl::OkStatus();
}

absl::Status GanTrainer::RestoreStep(int64_t step) {
  if (step < 0 || step > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("GAN step must be in [0, ", kMaxSteps, "], got ", step));
  }
  step_ = step;
  return absl::OkStatus();
}

absl::Status GanTrainer::Run(const Sampler& real, const GanRunOptions& options,
                             const Callbacks& callbacks) {
  if (options.total_steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("total_steps must be >= 0, got ", options.total_steps));
  }
  if (options.steps_per_epoch < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "steps_per_epoch must be >= 1, got ", options.steps_per_epoch));
  }
  auto fire = [](const RunCadence& when, const auto& callback,
                 const GanStepStats& s, bool epoch_end,
                 bool last) -> absl::Status {
    if (!callback || !when.Due(s.step, epoch_end, last)) {
      return absl::OkStatus();
    }
    return callback(s);
  };
  GanStepStats s;
  while (step_ < options.total_steps) {
    if (callbacks.should_stop && callbacks.should_stop()) {
      return absl::CancelledError(absl::StrCat("stopped at step ", step_));
    }
    NNLAB_RETURN_IF_ERROR(Step(real, &s));
    s.epoch = static_cast<int>((s.step - 1) / options.steps_per_epoch);
    const bool epoch_end = s.step % options.steps_per_epoch == 0;
    const bool last = s.step == options.total_steps;
    NNLAB_RETURN_IF_ERROR(
        fire(options.events, callbacks.on_step, s, epoch_end, last));
    NNLAB_RETURN_IF_ERROR(
        fire(options.checkpoints, callbacks.on_checkpoint, s, epoch_end, last));
    NNLAB_RETURN_IF_ERROR(
        fire(options.samples, callbacks.on_sample, s, epoch_end, last));
  }
  return absl::OkStatus();
}

void GanTrainer::Generate(int64_t n, Tensor* out) {
  SampleNoise(n);
  out->CopyFrom(g_->layers().Forward(z_, Mode::kEval));
}

void GanTrainer::Discriminate(const Tensor& x, Tensor* probs) {
  const Tensor& out = d_->layers().Forward(x, Mode::kEval);
  probs->Resize(out.shape());
  for (int64_t i = 0; i < out.size(); ++i) {
    (*probs)[i] = d_outputs_probability_
                      ? out[i]
                      : static_cast<float>(1.0 / (1.0 + std::exp(-out[i])));
  }
}

}  // namespace nnlab

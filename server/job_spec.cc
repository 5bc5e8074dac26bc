#include "server/job_spec.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/train/run.h"

namespace nnlab::server {

EffectiveSpec EffectiveOf(const v1::JobSpec& s) {
  EffectiveSpec e;
  e.epochs = s.epochs() == 0 ? 1 : s.epochs();
  e.batch_size = s.batch_size() == 0 ? 32 : s.batch_size();
  e.stats_every =
      s.stats_every() == 0 ? 1 : (s.stats_every() < 0 ? 0 : s.stats_every());
  e.gan_d_steps = s.gan_d_steps() == 0 ? 1 : s.gan_d_steps();
  return e;
}

absl::StatusOr<TrainOptions> TrainOptionsOf(const v1::JobSpec& spec) {
  const EffectiveSpec eff = EffectiveOf(spec);
  TrainOptions opts;
  NNLAB_ASSIGN_OR_RETURN(
      opts.optimizer, OptimizerFromProto(spec.optimizer(), "spec.optimizer"));
  opts.epochs = eff.epochs;
  opts.batch_size = eff.batch_size;
  // Fixed by the spec, not by how many replicas an attempt has: a job that
  // resumes on fewer replicas (min_replicas) keeps its steps and data order.
  opts.global_batch_size = eff.batch_size * std::max(1, spec.replicas());
  opts.stats_every = eff.stats_every;
  opts.eval_every_steps = spec.eval_every_steps();
  opts.shuffle_seed = spec.shuffle_seed();
  opts.shuffle = !spec.no_shuffle();
  return opts;
}

absl::Status CheckJobBatchSize(const v1::JobSpec& spec) {
  if (spec.batch_size() < 0 || spec.batch_size() > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.batch_size must be in [0, 65536], got ", spec.batch_size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateJobSpecFields(const v1::JobSpec& spec) {
  if (spec.gan_d_steps() < 0 || spec.gan_d_steps() > 100) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.gan_d_steps must be in [0, 100], got ", spec.gan_d_steps()));
  }
  if (spec.dataset().empty()) {
    return absl::InvalidArgumentError(
        "spec.dataset is empty (\"mnist\", \"fashion-mnist\" or an upload id)");
  }
  NNLAB_RETURN_IF_ERROR(
      OptimizerFromProto(spec.optimizer(), "spec.optimizer").status());
  if (spec.epochs() < 0 || spec.epochs() > 10000) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.epochs must be in [0, 10000], got ", spec.epochs()));
  }
  NNLAB_RETURN_IF_ERROR(CheckJobBatchSize(spec));
  if (spec.eval_every_steps() < 0) {
    return absl::InvalidArgumentError("spec.eval_every_steps must be >= 0");
  }
  if (spec.checkpoint_every_steps() < 0) {
    return absl::InvalidArgumentError(
        "spec.checkpoint_every_steps must be >= 0");
  }
  if (spec.stats_every() < -1) {
    return absl::InvalidArgumentError("spec.stats_every must be >= -1");
  }
  if (spec.max_train_samples() < 0) {
    return absl::InvalidArgumentError("spec.max_train_samples must be >= 0");
  }
  if (spec.max_steps() < 0) {
    return absl::InvalidArgumentError("spec.max_steps must be >= 0");
  }
  if (spec.label().size() > 256) {
    return absl::InvalidArgumentError(
        "spec.label is longer than 256 characters");
  }
  return absl::OkStatus();
}

absl::Status CheckJobBatchFits(const v1::JobSpec& spec, const ModelEntry& entry,
                               const Limits& limits) {
  const std::vector<ModelPart> parts =
      entry.is_gan() ? std::vector<ModelPart>{ModelPart::kGenerator,
                                              ModelPart::kDiscriminator}
                     : std::vector<ModelPart>{ModelPart::kMain};
  for (ModelPart part : parts) {
    absl::Status s =
        CheckBatchSize(entry.spec(part), EffectiveOf(spec).batch_size, limits);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("spec.batch_size: ", s.message()));
    }
  }
  return absl::OkStatus();
}

double SampleRate::Step(int64_t samples) {
  const absl::Time now = absl::Now();
  const double dt = absl::ToDoubleSeconds(now - last_);
  last_ = now;
  if (dt > 0) {
    const double inst = static_cast<double>(samples) / dt;
    rate_ = rate_ == 0 ? inst : 0.9 * rate_ + 0.1 * inst;
  }
  return rate_;
}

bool CheckpointDue(const v1::JobSpec& spec, int64_t step, bool epoch_end) {
  return RunCadence::EveryOrEpochEnd(spec.checkpoint_every_steps())
      .Due(step, epoch_end, /*last_step=*/false);
}

int64_t TrainSamples(const v1::JobSpec& spec, int64_t dataset_size) {
  if (spec.max_train_samples() > 0) {
    return std::min(dataset_size, spec.max_train_samples());
  }
  return dataset_size;
}

int64_t StepsPerEpoch(const v1::JobSpec& spec, int64_t samples) {
  const int64_t batch = EffectiveOf(spec).batch_size;
  return (samples + batch - 1) / batch;
}

int64_t TotalSteps(const v1::JobSpec& spec, int64_t samples) {
  int64_t total = StepsPerEpoch(spec, samples) * EffectiveOf(spec).epochs;
  if (spec.max_steps() > 0) total = std::min(total, spec.max_steps());
  return total;
}

absl::StatusOr<int64_t> CheckJobSpecAgainst(const v1::JobSpec& spec,
                                            const ModelEntry& entry,
                                            const DatasetPair& data,
                                            const Limits& limits) {
  Shape sample = data.train->sample_shape();
  if (!spec.sample_shape().empty()) {
    NNLAB_ASSIGN_OR_RETURN(
        Shape s,
        ShapeFromProto(spec.sample_shape(), "spec.sample_shape", limits));
    if (NumElements(s) != NumElements(sample)) {
      return absl::InvalidArgumentError(
          absl::StrCat("spec.sample_shape ", ShapeToString(s), " has ",
                       NumElements(s), " elements; the data set's samples ",
                       ShapeToString(sample), " have ", NumElements(sample)));
    }
    sample = s;
  }
  const int64_t total_steps =
      TotalSteps(spec, TrainSamples(spec, data.train->size()));
  if (entry.is_gan()) {
    // The discriminator sees real samples shaped like generated ones.
    const ModelSpec& d = entry.spec(ModelPart::kDiscriminator);
    if (d.input_shape != sample) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the GAN generates samples ", ShapeToString(d.input_shape),
          "; the data set's samples are ", ShapeToString(sample),
          " (set spec.sample_shape to reshape them)"));
    }
    return total_steps;
  }
  const ModelSpec& ms = entry.spec(ModelPart::kMain);
  if (ms.input_shape != sample) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model input_shape ", ShapeToString(ms.input_shape),
        " does not match the data set's samples ", ShapeToString(sample),
        spec.sample_shape().empty() ? " (set spec.sample_shape to reshape them)"
                                    : " (after spec.sample_shape)"));
  }
  const v1::Model info = entry.Info();
  Shape out(info.output_shape().begin(), info.output_shape().end());
  if (ms.loss == LossKind::kSequenceSoftmaxCrossEntropy) {
    // Per-step classes: targets [T] (class indices), outputs [T, C] with C
    // covering the data set's classes (DatasetInfo.num_classes; the
    // targets' range is checked again on every batch).
    const Shape& target = data.train->target_shape();
    const int64_t classes = data.info.num_classes();
    if (data.train->num_classes() > 0 || target.size() != 1 ||
        out.size() != 2 || out[0] != target[0] || out[1] < classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "per-step softmax cross-entropy needs per-step class targets [T] "
          "and outputs [T, classes]; data set ",
          spec.dataset(), " has targets ",
          data.train->num_classes() > 0 ? "(class labels)"
                                        : ShapeToString(target),
          classes > 0 ? absl::StrCat(" of ", classes, " classes") : "",
          ", the model's outputs are ", ShapeToString(out)));
    }
  } else if (data.train->num_classes() > 0) {
    const bool class_loss = ms.loss == LossKind::kSoftmaxCrossEntropy ||
                            ms.loss == LossKind::kSigmoidCrossEntropyClasses;
    if (!class_loss || out.size() != 1 || out[0] < data.train->num_classes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data set ", spec.dataset(), " has ", data.train->num_classes(),
          " classes; the model needs softmax cross-entropy and at least that "
          "many outputs, it has ",
          ShapeToString(out)));
    }
  } else if (out != data.train->target_shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set ", spec.dataset(), " has targets ",
                     ShapeToString(data.train->target_shape()),
                     "; the model's outputs are ", ShapeToString(out)));
  }
  return total_steps;
}

}  // namespace nnlab::server

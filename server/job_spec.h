// Training job specs (v1::JobSpec): validation and the defaults of unset
// fields, in one place for the job manager and the TrainingService.
//
// Every rejection is InvalidArgument naming the field ("spec.epochs ..."),
// except what the registries report (NotFound for an unknown model or data
// set) and the memory bound of CheckJobBatchFits.
#ifndef NNLAB_SERVER_JOB_SPEC_H_
#define NNLAB_SERVER_JOB_SPEC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/train/trainer.h"
#include "nnlab/v1/training.pb.h"
#include "server/convert.h"
#include "server/datasets.h"
#include "server/models.h"

namespace nnlab::server {

// A spec's settings with the defaults of unset (0) fields applied.
struct EffectiveSpec {
  int epochs = 1;
  int64_t batch_size = 32;
  int64_t stats_every = 1;  // 0: never (spec -1).
  int64_t gan_d_steps = 1;
};
// REQUIRES: ValidateJobSpecFields(spec) is OK.
EffectiveSpec EffectiveOf(const v1::JobSpec& spec);

// The Trainer options of a job (optimizer, epochs, batch, statistics,
// evaluation and shuffling), for a local run and every replica alike.
// REQUIRES: ValidateJobSpecFields(spec) is OK.
absl::StatusOr<TrainOptions> TrainOptionsOf(const v1::JobSpec& spec);

// spec.batch_size alone: in [0, 65536].
absl::Status CheckJobBatchSize(const v1::JobSpec& spec);
// The ranges of every field that needs neither the model nor the data set
// (gan_d_steps, dataset, optimizer, epochs, batch_size, eval_every_steps,
// checkpoint_every_steps, stats_every, max_train_samples, max_steps,
// label), in that order.
absl::Status ValidateJobSpecFields(const v1::JobSpec& spec);

// The effective batch of `spec` fits the buffers of every network of
// `entry` within `limits` (convert.h's CheckBatchSize); the error is
// prefixed "spec.batch_size: ". A batch too large would exhaust memory in
// the worker, long after StartJob returned. REQUIRES: CheckJobBatchSize OK.
absl::Status CheckJobBatchFits(const v1::JobSpec& spec, const ModelEntry& entry,
                               const Limits& limits);

// A job's training throughput as its events report it: an exponential
// moving average (weight 0.1) of the samples per second between steps.
class SampleRate {
 public:
  // Records a step of `samples` that ends now; returns the average.
  double Step(int64_t samples);

 private:
  absl::Time last_ = absl::Now();
  double rate_ = 0;
};

// Whether a job checkpoints after `step`: every checkpoint_every_steps, or
// at each epoch's end when that is 0.
bool CheckpointDue(const v1::JobSpec& spec, int64_t step, bool epoch_end);

// Samples a job trains on: the data set's, capped by max_train_samples.
int64_t TrainSamples(const v1::JobSpec& spec, int64_t dataset_size);
// Mini-batches per epoch over `samples`, the last one partial.
int64_t StepsPerEpoch(const v1::JobSpec& spec, int64_t samples);
// Steps the job runs over `samples`: every epoch, capped by max_steps.
int64_t TotalSteps(const v1::JobSpec& spec, int64_t samples);

// `spec` against its model and data set: spec.sample_shape reshapes the
// samples to what the model (a GAN's discriminator) takes, and the model's
// outputs fit the targets (at least num_classes softmax outputs for class
// labels). Returns the job's total steps. REQUIRES: ValidateJobSpecFields
// OK; `entry` and `data` are the spec's model and data set.
absl::StatusOr<int64_t> CheckJobSpecAgainst(const v1::JobSpec& spec,
                                            const ModelEntry& entry,
                                            const DatasetPair& data,
                                            const Limits& limits);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_JOB_SPEC_H_

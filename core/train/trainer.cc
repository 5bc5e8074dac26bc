#include "core/train/trainer.h"

#include <chrono>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab {

absl::Status ValidateTrainOptions(const TrainOptions& options) {
  NNLAB_RETURN_IF_ERROR(ValidateOptimizerConfig(options.optimizer));
  if (options.epochs < 1 || options.epochs > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("epochs must be in [1, 100000], got ", options.epochs));
  }
  if (options.batch_size < 1 || options.batch_size > kMaxBatchSize) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size must be in [1, ",
                                                   kMaxBatchSize, "], got ",
                                                   options.batch_size));
  }
  if (options.global_batch_size < 0 ||
      options.global_batch_size > kMaxBatchSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("global_batch_size must be in [0, ", kMaxBatchSize,
                     "], got ", options.global_batch_size));
  }
  if (options.stats_every < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stats_every must be >= 0, got ", options.stats_every));
  }
  if (options.eval_every_steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "eval_every_steps must be >= 0, got ", options.eval_every_steps));
  }
  return absl::OkStatus();
}

namespace {

// What an evaluation adds up; shards' sums add to the whole set's.
struct EvalSums {
  double loss = 0;  // Sum of per-sample losses.
  int64_t correct = 0;
  int64_t samples = 0;
  int64_t scored = 0;  // Rows, or (row, step) pairs for per-step losses.
};

// Samples [begin, begin + size) of `base`, as a data set of their own.
class SliceView final : public Dataset {
 public:
  SliceView(const Dataset& base, int64_t begin, int64_t size)
      : base_(base), begin_(begin), size_(size) {}
  int64_t size() const override { return size_; }
  const Shape& sample_shape() const override { return base_.sample_shape(); }
  const Shape& target_shape() const override { return base_.target_shape(); }
  int num_classes() const override { return base_.num_classes(); }
  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override {
    shifted_.assign(idx.begin(), idx.end());
    for (int64_t& i : shifted_) i += begin_;
    base_.Gather(shifted_, x, y);
  }

 private:
  const Dataset& base_;
  int64_t begin_, size_;
  mutable std::vector<int64_t> shifted_;  // One evaluation (thread) at once.
};

// Sums over all of `data`, which may be empty (a replica's empty slice).
absl::StatusOr<EvalSums> EvaluateSums(Model* model, const Dataset& data,
                                      int64_t batch_size) {
  EvalSums sums;
  if (data.size() == 0) return sums;
  Rng unused;
  BatchIterator it(&data, batch_size, /*shuffle=*/false, &unused);
  it.StartEpoch();
  Tensor x, y, grad;
  while (it.Next(&x, &y)) {
    NNLAB_RETURN_IF_ERROR(model->CheckInput(x));
    const Tensor& out = model->Forward(x, Mode::kEval);
    NNLAB_RETURN_IF_ERROR(model->loss()->ValidateTarget(out.shape(), y));
    sums.loss += double(model->loss()->Compute(out, y, &grad)) * x.dim(0);
    sums.correct += model->loss()->CountCorrect(out, y);
    sums.samples += x.dim(0);
    sums.scored += model->loss()->per_step() ? x.dim(0) * out.dim(1) : x.dim(0);
  }
  return sums;
}

EvalResult ResultOf(const Model& model, const EvalSums& sums) {
  EvalResult result;
  result.samples = sums.samples;
  result.loss = sums.loss / sums.samples;
  result.accuracy = model.loss()->is_classifier()
                        ? double(sums.correct) / double(sums.scored)
                        : -1;
  return result;
}

}  // namespace

absl::StatusOr<EvalResult> Evaluate(Model* model, const Dataset& data,
                                    int64_t batch_size) {
  if (data.size() == 0) {
    return absl::InvalidArgumentError("evaluation data set is empty");
  }
  NNLAB_ASSIGN_OR_RETURN(EvalSums sums, EvaluateSums(model, data, batch_size));
  return ResultOf(*model, sums);
}

absl::StatusOr<EvalResult> EvaluateSharded(Model* model, const Dataset& data,
                                           int64_t batch_size,
                                           Collective* collective) {
  if (collective == nullptr || collective->size() <= 1) {
    return Evaluate(model, data, batch_size);
  }
  // Every replica sees the same size, so all return here alike.
  if (data.size() == 0) {
    return absl::InvalidArgumentError("evaluation data set is empty");
  }
  const int64_t n = data.size(), ranks = collective->size();
  const int64_t r = collective->rank();
  const int64_t begin = r * n / ranks, end = (r + 1) * n / ranks;
  const SliceView slice(data, begin, end - begin);
  NNLAB_ASSIGN_OR_RETURN(EvalSums sums, EvaluateSums(model, slice, batch_size));
  // Mean x N = sum. Non-classifiers' counts are meaningless but harmless.
  std::vector<float> buffer = {
      static_cast<float>(sums.loss), static_cast<float>(sums.correct),
      static_cast<float>(sums.samples), static_cast<float>(sums.scored)};
  const absl::Span<float> span(buffer);
  absl::Status s = collective->AllreduceAverage(absl::MakeConstSpan(&span, 1));
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("evaluation allreduce: ", s.message()));
  }
  const double size = static_cast<double>(ranks);
  EvalSums total;
  total.loss = double(buffer[0]) * size;
  // Each count came back as count / N in float: within half an integer of
  // its value while the counts stay below 2^22.
  total.correct = std::llround(double(buffer[1]) * size);
  total.samples = std::llround(double(buffer[2]) * size);
  total.scored = std::llround(double(buffer[3]) * size);
  if (total.samples != n) {
    return absl::InternalError(absl::StrCat("evaluation shards add up to ",
                                            total.samples,
                                            " samples instead of ", n));
  }
  return ResultOf(*model, total);
}

Trainer::Trainer(Model* model, const TrainOptions& options)
    : model_(model),
      options_(options),
      optimizer_(MakeOptimizer(options.optimizer, model->Params())),
      params_(model->Params()) {}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    Model* model, const TrainOptions& options) {
  NNLAB_RETURN_IF_ERROR(ValidateTrainOptions(options));
  return std::unique_ptr<Trainer>(new Trainer(model, options));
}

absl::Status Trainer::SetState(const TrainerState& state) {
  if (state.step < 0 || state.epoch < 0 || state.batch_in_epoch < 0) {
    return absl::InvalidArgumentError("trainer state has negative counters");
  }
  NNLAB_RETURN_IF_ERROR(optimizer_->RestoreStep(state.step));
  state_ = state;
  return absl::OkStatus();
}

void Trainer::set_collective(Collective* collective) {
  collective_ = collective;
  exchange_.clear();
  if (!distributed()) return;
  size_t n = 2;  // Loss and accuracy ride along with the gradients.
  for (const Param& p : params_) n += static_cast<size_t>(p.grad->size());
  exchange_.assign(n, 0.0f);
}

absl::Status Trainer::TrainStep(const Tensor& x, const Tensor& y,
                                bool layer_stats, StepStats* stats) {
  NNLAB_RETURN_IF_ERROR(model_->CheckInput(x));
  return Step(x, y, x.dim(0), x.dim(0), layer_stats, stats);
}

absl::Status Trainer::Step(const Tensor& x, const Tensor& y, int64_t local_n,
                           int64_t global_n, bool layer_stats,
                           StepStats* stats) {
  const int64_t step = state_.step + 1;  // 1-based number of this step.
  model_->ZeroGrad();
  Loss* loss = model_->loss();
  float loss_value = 0;
  int64_t correct = 0;
  // Predictions per sample: 1, or T for per-step losses.
  int64_t per_sample = 1;
  if (local_n > 0) {
    const Tensor& out = model_->Forward(x, Mode::kTrain);
    NNLAB_RETURN_IF_ERROR(loss->ValidateTarget(out.shape(), y));
    loss_value = loss->Compute(out, y, &grad_out_);
    // Distributed, a replica must still join the allreduce, which carries
    // the non-finite loss to all of them: the check comes after it.
    if (!distributed() && !std::isfinite(loss_value)) {
      return absl::OutOfRangeError(absl::StrCat(
          "step ", step, ": loss is ", loss_value,
          " (the outputs overflowed); lower the learning rate or clip "
          "gradients"));
    }
    model_->Backward(grad_out_);
    correct = loss->CountCorrect(out, y);
    if (loss->per_step()) per_sample = out.dim(1);
  } else {
    layer_stats = false;  // No activations of this step to describe.
  }
  double accuracy =
      correct < 0 ? -1.0 : double(correct) / double(global_n * per_sample);
  stats->comm_seconds = 0;
  if (distributed()) {
    // Each replica's gradient is the mean over its local_n samples; scaled
    // by N * local_n / global_n, their mean over the N replicas is the mean
    // over the global batch. A full batch has scale exactly 1.
    const float n = static_cast<float>(collective_->size());
    const float scale =
        n * static_cast<float>(local_n) / static_cast<float>(global_n);
    float* out = exchange_.data();
    for (const Param& p : params_) {
      const float* g = p.grad->data();
      const int64_t size = p.grad->size();
      for (int64_t i = 0; i < size; ++i) out[i] = g[i] * scale;
      out += size;
    }
    out[0] = loss_value * scale;
    out[1] = loss->is_classifier()
                 ? n * static_cast<float>(correct) /
                       static_cast<float>(global_n * per_sample)
                 : 0.0f;
    const auto t0 = std::chrono::steady_clock::now();
    const absl::Span<float> buffer(exchange_);
    absl::Status s =
        collective_->AllreduceAverage(absl::MakeConstSpan(&buffer, 1));
    stats->comm_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (!s.ok()) {
      return absl::Status(
          s.code(),
          absl::StrCat("step ", step, ": gradient allreduce: ", s.message()));
    }
    const float* in = exchange_.data();
    for (const Param& p : params_) {
      float* g = p.grad->data();
      const int64_t size = p.grad->size();
      for (int64_t i = 0; i < size; ++i) g[i] = in[i];
      in += size;
    }
    loss_value = in[0];
    if (loss->is_classifier()) accuracy = in[1];
    if (!std::isfinite(loss_value)) {
      return absl::OutOfRangeError(absl::StrCat(
          "step ", step, ": loss is ", loss_value,
          " (the outputs overflowed on some replica); lower the learning "
          "rate or clip gradients"));
    }
    if (collective_->rank() != 0) layer_stats = false;
  }
  if (options_.optimizer.weight_decay > 0) {
    ApplyWeightDecay(params_, options_.optimizer.weight_decay);
  }
  const double grad_norm = GlobalGradNorm(params_);
  if (!std::isfinite(grad_norm)) {
    // Name the first parameter whose gradient blew up.
    std::string culprit = "?";
    for (const Param& p : params_) {
      if (!p.grad->AllFinite()) {
        culprit = p.name;
        break;
      }
    }
    return absl::OutOfRangeError(absl::StrCat(
        "step ", step, ": gradient of ", culprit,
        " is not finite (exploding gradient); lower the learning rate or "
        "clip gradients"));
  }
  if (options_.optimizer.clip_norm > 0) {
    ClipGradNorm(params_, options_.optimizer.clip_norm);
  }
  if (layer_stats) {
    weights_before_.resize(params_.size());
    for (size_t i = 0; i < params_.size(); ++i) {
      weights_before_[i].CopyFrom(*params_[i].value);
    }
  }
  const float lr = LearningRateAt(options_.optimizer, state_.step);
  optimizer_->Step(lr);
  state_.step = step;

  stats->step = step;
  stats->epoch = state_.epoch;
  stats->loss = loss_value;
  stats->accuracy = accuracy;
  stats->learning_rate = lr;
  stats->grad_norm = grad_norm;
  stats->layers.clear();
  if (layer_stats) stats->layers = model_->CollectLayerStats(&weights_before_);
  return absl::OkStatus();
}

absl::Status Trainer::Run(const Dataset& train, const Dataset* test,
                          const Callbacks& callbacks) {
  if (train.size() == 0) {
    return absl::InvalidArgumentError("training data set is empty");
  }
  Rng shuffle_rng(options_.shuffle_seed);
  if (!state_.shuffle_rng.empty()) {
    NNLAB_RETURN_IF_ERROR(shuffle_rng.Restore(state_.shuffle_rng));
  }
  const int replicas = distributed() ? collective_->size() : 1;
  const int64_t global = options_.global_batch_size > 0
                             ? options_.global_batch_size
                             : options_.batch_size * replicas;
  BatchIterator it(&train, global, options_.shuffle, &shuffle_rng);
  if (replicas > 1) it.SetShard(collective_->rank(), replicas);
  Tensor x, y;
  StepStats stats;
  // Layer statistics on steps 1, N + 1, ... (counted before the step).
  const RunCadence layer_stats_at = RunCadence::Every(options_.stats_every);
  // Every N steps, and at each epoch's end unless that step just had one.
  const RunCadence eval_at = RunCadence::Every(options_.eval_every_steps);
  auto evaluate = [&]() -> absl::Status {
    if (test == nullptr) return absl::OkStatus();
    NNLAB_ASSIGN_OR_RETURN(
        EvalResult r,
        EvaluateSharded(model_, *test, options_.batch_size, collective_));
    if (callbacks.on_eval) callbacks.on_eval(stats, r);
    return absl::OkStatus();
  };
  while (state_.epoch < options_.epochs) {
    // The epoch's shuffle is a function of this state, so a resumed run
    // replays the same order and skips the batches already done.
    state_.shuffle_rng = shuffle_rng.Save();
    it.StartEpoch();
    it.SkipTo(state_.batch_in_epoch);
    while (true) {
      if (callbacks.should_stop && callbacks.should_stop()) {
        return absl::CancelledError(
            absl::StrCat("stopped at step ", state_.step));
      }
      if (!it.Next(&x, &y)) break;
      const bool layer_stats = layer_stats_at.Due(state_.step, false, false);
      if (it.shard_batch_size() > 0) {
        NNLAB_RETURN_IF_ERROR(model_->CheckInput(x));
      }
      NNLAB_RETURN_IF_ERROR(Step(x, y, it.shard_batch_size(),
                                 it.global_batch_size(), layer_stats, &stats));
      ++state_.batch_in_epoch;
      if (callbacks.on_step) NNLAB_RETURN_IF_ERROR(callbacks.on_step(stats));
      const bool epoch_end = state_.batch_in_epoch >= it.batches_per_epoch();
      if (callbacks.on_checkpoint &&
          options_.checkpoints.Due(
              state_.step, epoch_end,
              epoch_end && state_.epoch == options_.epochs - 1)) {
        NNLAB_RETURN_IF_ERROR(callbacks.on_checkpoint(stats));
      }
      if (eval_at.Due(state_.step, false, false)) {
        NNLAB_RETURN_IF_ERROR(evaluate());
      }
    }
    ++state_.epoch;
    state_.batch_in_epoch = 0;
    // The next epoch's order continues from the RNG as it is now.
    state_.shuffle_rng = shuffle_rng.Save();
    if (!eval_at.Due(state_.step, false, false)) {
      NNLAB_RETURN_IF_ERROR(evaluate());
    }
  }
  return absl::OkStatus();
}

}  // namespace nnlab

// RunState: a run captured between steps and restored into a fresh trainer
// (built with other seeds, so nothing carries over by accident) continues
// bit for bit like the uninterrupted run, for a Trainer and a GanTrainer
// with dropout (RNG state) and batch norm (buffers); a state that does not
// fit the trainer is rejected and leaves it unchanged.
#include "core/train/run_state.h"

#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/data/sequence_data.h"
#include "core/model/model.h"
#include "core/status_macros.h"
#include "core/tensor/rng.h"
#include "core/train/gan_trainer.h"
#include "core/train/trainer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

LayerSpec Layer(const std::string& kind, int64_t units = 0) {
  LayerSpec l;
  l.kind = kind;
  l.units = units;
  return l;
}

ModelSpec Classifier(uint64_t seed, int64_t hidden = 16) {
  ModelSpec spec;
  spec.input_shape = {6};
  spec.init = InitKind::kHe;
  spec.seed = seed;
  spec.layers = {Layer("dense", hidden), Layer("batch_norm"), Layer("relu"),
                 Layer("dropout"), Layer("dense", 3)};
  spec.layers[3].keep_prob = 0.7f;
  return spec;
}

TrainOptions Options() {
  TrainOptions o;
  o.optimizer.kind = OptimizerKind::kAdam;
  o.optimizer.lr = 0.01f;
  o.epochs = 3;
  o.batch_size = 8;  // 40 samples: 5 steps an epoch, 15 in all.
  o.stats_every = 0;
  o.shuffle_seed = 7;
  o.checkpoints = RunCadence::Every(1);  // RunPlain picks its step.
  return o;
}

std::unique_ptr<Dataset> Data() {
  Rng rng(3);
  Tensor x({40, 6}), y({40});
  rng.FillNormal(x.data(), x.size());
  for (int64_t i = 0; i < 40; ++i)
    y[i] = float((x[i * 6] > 0) + (x[i * 6 + 1] > 0));
  auto d = TensorDataset::Create(std::move(x), std::move(y), 3);
  NNLAB_CHECK(d.ok());
  return std::move(d).value();
}

struct PlainRun {
  std::unique_ptr<Model> model;
  std::unique_ptr<Trainer> trainer;
};

PlainRun MakePlain(uint64_t seed, int64_t hidden = 16) {
  PlainRun r;
  auto model = Model::Build(Classifier(seed, hidden));
  NNLAB_CHECK(model.ok());
  r.model = std::move(model).value();
  auto trainer = Trainer::Create(r.model.get(), Options());
  NNLAB_CHECK(trainer.ok());
  r.trainer = std::move(trainer).value();
  return r;
}

// Losses of every step Run takes; if `stop_at` > 0, captures the state
// after that step into `state` and stops there.
std::vector<double> RunPlain(Trainer* trainer, const Dataset& data,
                             int64_t stop_at, RunState* state) {
  std::vector<double> losses;
  bool stop = false;
  Trainer::Callbacks cb;
  cb.on_step = [&](const StepStats& s) {
    losses.push_back(s.loss);
    return absl::OkStatus();
  };
  cb.on_checkpoint = [&](const StepStats& s) {
    if (s.step == stop_at) {
      *state = RunState::Capture(trainer);
      stop = true;
    }
    return absl::OkStatus();
  };
  cb.should_stop = [&]() { return stop; };
  absl::Status st = trainer->Run(data, nullptr, cb);
  EXPECT_EQ(st.code(),
            stop_at > 0 ? absl::StatusCode::kCancelled : absl::StatusCode::kOk)
      << st;
  return losses;
}

TEST(RunStateTest, PlainRunContinuesBitForBit) {
  std::unique_ptr<Dataset> data = Data();
  PlainRun whole = MakePlain(1);
  const std::vector<double> expected =
      RunPlain(whole.trainer.get(), *data, 0, nullptr);
  ASSERT_EQ(expected.size(), 15u);

  // Mid-epoch (step 7 = epoch 1, batch 2) and at an epoch's end (step 10).
  for (int64_t stop_at : {7, 10}) {
    SCOPED_TRACE(stop_at);
    PlainRun first = MakePlain(1);
    RunState state;
    std::vector<double> losses =
        RunPlain(first.trainer.get(), *data, stop_at, &state);
    ASSERT_EQ(losses.size(), size_t(stop_at));
    EXPECT_EQ(state.step, stop_at);
    EXPECT_EQ(state.epoch, 1);
    EXPECT_EQ(state.batch_in_epoch, stop_at == 7 ? 2 : 5);
    EXPECT_FALSE(state.buffers.empty());  // Batch-norm running statistics.

    PlainRun second = MakePlain(99);  // Other initial weights and dropout.
    ASSERT_TRUE(state.Restore(second.trainer.get()).ok());
    for (double l : RunPlain(second.trainer.get(), *data, 0, nullptr)) {
      losses.push_back(l);
    }
    EXPECT_EQ(losses, expected);  // Bit for bit.
  }
}

// Without the model's RNG state the dropout masks differ after the resume:
// the state is what makes the continuation exact.
TEST(RunStateTest, DropoutMasksComeFromTheSavedRng) {
  std::unique_ptr<Dataset> data = Data();
  PlainRun whole = MakePlain(1);
  const std::vector<double> expected =
      RunPlain(whole.trainer.get(), *data, 0, nullptr);
  PlainRun first = MakePlain(1);
  RunState state;
  std::vector<double> losses = RunPlain(first.trainer.get(), *data, 7, &state);
  state.model_rng.clear();  // Keep the fresh model's RNG.
  PlainRun second = MakePlain(99);
  ASSERT_TRUE(state.Restore(second.trainer.get()).ok());
  std::vector<double> rest = RunPlain(second.trainer.get(), *data, 0, nullptr);
  ASSERT_EQ(rest.size(), 8u);
  EXPECT_NE(rest[0], expected[7]);
}

void ExpectRejected(const RunState& state, Trainer* trainer,
                    const std::string& mentions) {
  const Tensor before = trainer->model()->Params()[0].value->Clone();
  absl::Status s = state.Restore(trainer);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(mentions), absl::string_view::npos) << s;
  // Nothing was copied, not even the tensors that did fit.
  const Tensor& after = *trainer->model()->Params()[0].value;
  for (int64_t i = 0; i < before.size(); ++i) ASSERT_EQ(before[i], after[i]);
  EXPECT_EQ(trainer->state().step, 0);
}

TEST(RunStateTest, MismatchedStateIsRejected) {
  PlainRun source = MakePlain(1);
  // RunState holds tensors, so it moves but does not copy: capture anew.
  auto good = [&]() { return RunState::Capture(source.trainer.get()); };
  PlainRun target = MakePlain(2);

  // Another architecture: dense0 has 12 units instead of 16.
  PlainRun narrow = MakePlain(1, /*hidden=*/12);
  ExpectRejected(RunState::Capture(narrow.trainer.get()), target.trainer.get(),
                 "shape");
  RunState s = good();
  s.weights.pop_back();
  ExpectRejected(s, target.trainer.get(), "weights");
  s = good();
  s.buffers[0].first = "nonesuch";
  ExpectRejected(s, target.trainer.get(), "nonesuch");
  s = good();
  s.optimizer_slots.back().second = Tensor({2});
  ExpectRejected(s, target.trainer.get(), "optimizer_slots");
  s = good();
  s.model_rng = "not an rng state";
  ExpectRejected(s, target.trainer.get(), "model_rng");
  s = good();
  s.step = -1;
  ExpectRejected(s, target.trainer.get(), "step");

  // The unaltered state fits.
  ASSERT_TRUE(good().Restore(target.trainer.get()).ok());
}

GanOptions SmallGan(uint64_t seed) {
  GanOptions o;
  o.generator.input_shape = {4};
  o.generator.init = InitKind::kGlorot;
  o.generator.seed = seed;
  o.generator.layers = {Layer("dense", 8), Layer("batch_norm"), Layer("relu"),
                        Layer("dense", 1)};
  o.discriminator.input_shape = {1};
  o.discriminator.init = InitKind::kGlorot;
  o.discriminator.loss = LossKind::kSigmoidCrossEntropy;
  o.discriminator.seed = seed + 1;
  o.discriminator.layers = {Layer("dense", 8), Layer("relu"), Layer("dropout"),
                            Layer("dense", 1)};
  o.discriminator.layers[2].keep_prob = 0.8f;
  o.g_optimizer.kind = OptimizerKind::kAdam;
  o.d_optimizer.kind = OptimizerKind::kMomentum;
  o.d_steps = 2;
  o.batch_size = 16;
  o.seed = seed;
  return o;
}

// Both losses of every step; if `stop_at` > 0, captures after that step and
// stops there.
std::vector<double> RunGan(GanTrainer* gan, const Sampler& real,
                           int64_t stop_at, RunState* state) {
  GanRunOptions ro;
  ro.total_steps = 12;
  ro.steps_per_epoch = 4;
  ro.checkpoints = RunCadence::Every(1);
  std::vector<double> losses;
  bool stop = false;
  GanTrainer::Callbacks cb;
  cb.on_step = [&](const GanStepStats& s) {
    losses.push_back(s.d_loss);
    losses.push_back(s.g_loss);
    return absl::OkStatus();
  };
  cb.on_checkpoint = [&](const GanStepStats& s) {
    if (s.step == stop_at) {
      *state = RunState::Capture(gan);
      stop = true;
    }
    return absl::OkStatus();
  };
  cb.should_stop = [&]() { return stop; };
  absl::Status st = gan->Run(real, ro, cb);
  EXPECT_EQ(st.code(),
            stop_at > 0 ? absl::StatusCode::kCancelled : absl::StatusCode::kOk)
      << st;
  return losses;
}

TEST(RunStateTest, GanRunContinuesBitForBit) {
  auto gauss = Gaussian1D::Create(4.0f, 1.25f);
  ASSERT_TRUE(gauss.ok());
  auto whole = GanTrainer::Create(SmallGan(1));
  ASSERT_TRUE(whole.ok());
  const std::vector<double> expected =
      RunGan(whole->get(), **gauss, 0, nullptr);
  ASSERT_EQ(expected.size(), 24u);

  auto first = GanTrainer::Create(SmallGan(1));
  ASSERT_TRUE(first.ok());
  RunState state;
  std::vector<double> losses = RunGan(first->get(), **gauss, 5, &state);
  EXPECT_EQ(state.step, 5);
  EXPECT_EQ(state.weights.front().first.rfind("generator/", 0), 0u);
  EXPECT_EQ(state.weights.back().first.rfind("discriminator/", 0), 0u);
  EXPECT_FALSE(state.buffers.empty());

  // Other seeds: weights, noise and dropout all come from the state.
  auto second = GanTrainer::Create(SmallGan(50));
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(state.Restore(second->get()).ok());
  EXPECT_EQ((*second)->step(), 5);
  EXPECT_EQ((*second)->d_optimizer()->step(), 10);  // d_steps = 2.
  for (double l : RunGan(second->get(), **gauss, 0, nullptr)) {
    losses.push_back(l);
  }
  EXPECT_EQ(losses, expected);  // Bit for bit.

  // A plain trainer's state does not fit a GAN, nor the other way round.
  PlainRun plain = MakePlain(1);
  absl::Status s =
      RunState::Capture(plain.trainer.get()).Restore(second->get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  s = state.Restore(plain.trainer.get());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("weights"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace nnlab

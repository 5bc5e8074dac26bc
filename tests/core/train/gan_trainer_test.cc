// GanTrainer: option and shape validation, the two discriminator output
// forms, the generator loss kinds, and Run's callbacks and cadences.
#include "core/train/gan_trainer.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/sequence_data.h"
#include "core/model/model.h"
#include "core/optim/optimizer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

void ExpectInvalid(const absl::Status& s, const std::string& mentions) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(mentions), absl::string_view::npos) << s;
}

GanOptions SmallGan() {
  GanOptions o;
  o.generator.input_shape = {4};
  o.generator.init = InitKind::kGlorot;
  o.generator.loss = LossKind::kMse;
  o.generator.layers.resize(3);
  o.generator.layers[0].kind = "dense";
  o.generator.layers[0].units = 8;
  o.generator.layers[1].kind = "relu";
  o.generator.layers[2].kind = "dense";
  o.generator.layers[2].units = 1;
  o.discriminator.input_shape = {1};
  o.discriminator.init = InitKind::kGlorot;
  o.discriminator.loss = LossKind::kSigmoidCrossEntropy;
  o.discriminator.layers.resize(3);
  o.discriminator.layers[0].kind = "dense";
  o.discriminator.layers[0].units = 8;
  o.discriminator.layers[1].kind = "relu";
  o.discriminator.layers[2].kind = "dense";
  o.discriminator.layers[2].units = 1;
  o.g_optimizer.kind = OptimizerKind::kAdam;
  o.d_optimizer.kind = OptimizerKind::kAdam;
  o.batch_size = 16;
  return o;
}

TEST(BadInputTest, GanShapesAndOptions) {
  ASSERT_TRUE(GanTrainer::Create(SmallGan()).ok());
  GanOptions o = SmallGan();
  o.generator.layers[2].units = 2;  // Generates [2]; D takes [1].
  ExpectInvalid(GanTrainer::Create(o).status(), "does not match");
  o = SmallGan();
  o.discriminator.layers[2].units = 2;
  ExpectInvalid(GanTrainer::Create(o).status(), "output must be [1]");
  o = SmallGan();
  o.d_steps = 0;
  ExpectInvalid(GanTrainer::Create(o).status(), "d_steps");
  o = SmallGan();
  o.generator.input_shape = {2, 2};
  ExpectInvalid(GanTrainer::Create(o).status(), "generator.input_shape");
  o = SmallGan();
  o.d_optimizer.lr = -1;
  ExpectInvalid(GanTrainer::Create(o).status(), "d_optimizer");
  o = SmallGan();
  o.discriminator.layers[0].units = 0;
  ExpectInvalid(GanTrainer::Create(o).status(), "discriminator");

  auto gan = GanTrainer::Create(SmallGan());
  auto ring = GaussianRing::Create(4, 1.0f, 0.1f);  // [2] samples.
  GanStepStats stats;
  ExpectInvalid((*gan)->Step(**ring, &stats), "real samples");
}

// A discriminator ending in "sigmoid" outputs probabilities; one without it
// outputs logits. With the same weights, both give the same losses and
// statistics, and the same updates.
TEST(GanTest, ProbabilityAndLogitDiscriminatorsAgree) {
  GanOptions logit = SmallGan();
  // SGD, not Adam: Adam's first step is ~lr sign(g), which float noise on a
  // near-zero gradient could flip between the two.
  logit.g_optimizer.kind = logit.d_optimizer.kind = OptimizerKind::kSgd;
  logit.g_optimizer.lr = logit.d_optimizer.lr = 0.05f;
  GanOptions prob = logit;
  prob.discriminator.layers.push_back(LayerSpec{});
  prob.discriminator.layers.back().kind = "sigmoid";
  auto a = GanTrainer::Create(logit);
  auto b = GanTrainer::Create(prob);
  ASSERT_TRUE(a.ok() && b.ok());
  auto gauss = Gaussian1D::Create(4.0f, 1.25f);
  for (int step = 0; step < 3; ++step) {
    GanStepStats sa, sb;
    ASSERT_TRUE((*a)->Step(**gauss, &sa).ok());
    ASSERT_TRUE((*b)->Step(**gauss, &sb).ok());
    EXPECT_NEAR(sa.d_loss, sb.d_loss, 1e-5);
    EXPECT_NEAR(sa.g_loss, sb.g_loss, 1e-5);
    EXPECT_NEAR(sa.d_real, sb.d_real, 1e-6);
    EXPECT_NEAR(sa.d_fake, sb.d_fake, 1e-6);
    EXPECT_NEAR(sa.d_grad_norm, sb.d_grad_norm, 1e-4 * (1 + sa.d_grad_norm));
    EXPECT_NEAR(sa.g_grad_norm, sb.g_grad_norm, 1e-4 * (1 + sa.g_grad_norm));
    EXPECT_GT(sa.d_real, 0.0);
    EXPECT_LT(sa.d_real, 1.0);
    EXPECT_EQ(sa.step, step + 1);
  }
  Tensor probs, x({1, 1});
  x[0] = 4.0f;
  (*a)->Discriminate(x, &probs);
  Tensor probs_b;
  (*b)->Discriminate(x, &probs_b);
  EXPECT_NEAR(probs[0], probs_b[0], 1e-5);
}

// Minimax and non-saturating losses at one point, by hand: with D's output
// logit z for G(z'), the non-saturating loss is softplus(-z) and the
// minimax loss log(1 - sigmoid(z)) = -softplus(z).
TEST(GanTest, GeneratorLossKinds) {
  GanOptions o = SmallGan();
  o.batch_size = 1;
  o.g_optimizer.lr = 1e-12f;  // Keep G fixed between the two trainers.
  o.d_optimizer.lr = 1e-12f;
  auto ns = GanTrainer::Create(o);
  o.generator_loss = GanLossKind::kMinimax;
  auto mm = GanTrainer::Create(o);
  ASSERT_TRUE(ns.ok() && mm.ok());
  auto gauss = Gaussian1D::Create(0.0f, 1.0f);
  GanStepStats a, b;
  ASSERT_TRUE((*ns)->Step(**gauss, &a).ok());
  ASSERT_TRUE((*mm)->Step(**gauss, &b).ok());
  // Same seeds: the same noise and D(G(z)) = p at the G step.
  const double p = std::exp(-a.g_loss);  // Non-saturating: -log p.
  EXPECT_NEAR(b.g_loss, std::log(1 - p), 1e-5);
  EXPECT_GT(a.g_loss, 0);
  EXPECT_LT(b.g_loss, 0);
}

// Run fires each callback on its own cadence, numbers epochs from
// steps_per_epoch, reports the generator's learning rate, and stops when
// should_stop says so, resuming from where it stopped.
TEST(GanRunTest, CallbacksFollowTheirCadences) {
  GanOptions o = SmallGan();
  o.g_optimizer.schedule = LrSchedule::kStep;
  o.g_optimizer.lr = 0.01f;
  o.g_optimizer.decay_steps = 4;
  o.g_optimizer.decay_rate = 0.5f;
  auto gan = GanTrainer::Create(o);
  ASSERT_TRUE(gan.ok());
  auto gauss = Gaussian1D::Create(4.0f, 1.25f);
  GanRunOptions ro;
  ro.total_steps = 7;
  ro.steps_per_epoch = 3;
  ro.events = RunCadence::Every(2);
  ro.checkpoints = RunCadence::EveryOrEpochEnd(0);
  ro.samples.at_last_step = true;
  std::vector<int64_t> events, epochs, checkpoints, samples;
  std::vector<double> lrs;
  GanTrainer::Callbacks cb;
  cb.on_step = [&](const GanStepStats& s) {
    events.push_back(s.step);
    epochs.push_back(s.epoch);
    lrs.push_back(s.learning_rate);
    return absl::OkStatus();
  };
  cb.on_checkpoint = [&](const GanStepStats& s) {
    checkpoints.push_back(s.step);
    return absl::OkStatus();
  };
  cb.on_sample = [&](const GanStepStats& s) {
    samples.push_back(s.step);
    return absl::OkStatus();
  };
  int polls = 0;
  cb.should_stop = [&]() { return ++polls == 6; };  // Before step 6.
  absl::Status st = (*gan)->Run(**gauss, ro, cb);
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_EQ((*gan)->step(), 5);
  cb.should_stop = nullptr;
  ASSERT_TRUE((*gan)->Run(**gauss, ro, cb).ok());
  EXPECT_EQ((*gan)->step(), 7);
  EXPECT_EQ(events, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(epochs, (std::vector<int64_t>{0, 1, 1}));
  // Steps 2, 4, 6 run at 0-based steps 1, 3, 5: lr halves every 4 steps.
  EXPECT_EQ(lrs, (std::vector<double>{0.01f, 0.01f, 0.005f}));
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{3, 6}));
  EXPECT_EQ(samples, (std::vector<int64_t>{7}));
  // At total_steps already: nothing to do.
  ASSERT_TRUE((*gan)->Run(**gauss, ro, cb).ok());
  EXPECT_EQ((*gan)->step(), 7);

  ro.steps_per_epoch = 0;
  ExpectInvalid((*gan)->Run(**gauss, ro, cb), "steps_per_epoch");
  ro.steps_per_epoch = 1;
  ro.total_steps = -1;
  ExpectInvalid((*gan)->Run(**gauss, ro, cb), "total_steps");
}

// A callback's error stops the run after that step and is returned.
TEST(GanRunTest, CallbackErrorStopsTheRun) {
  auto gan = GanTrainer::Create(SmallGan());
  ASSERT_TRUE(gan.ok());
  auto gauss = Gaussian1D::Create(4.0f, 1.25f);
  GanRunOptions ro;
  ro.total_steps = 10;
  ro.checkpoints = RunCadence::Every(3);
  GanTrainer::Callbacks cb;
  cb.on_checkpoint = [](const GanStepStats& s) {
    return absl::DataLossError(absl::StrCat("disk full at ", s.step));
  };
  absl::Status st = (*gan)->Run(**gauss, ro, cb);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(st.message(), "disk full at 3");
  EXPECT_EQ((*gan)->step(), 3);
}

}  // namespace
}  // namespace nnlab

// Job-spec validation and defaults: every bad field is InvalidArgument
// naming it, the boundaries are accepted, the defaults and step counts are
// what the proto documents, and specs are checked against their model and
// data set.
#include "server/job_spec.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/scratch_dir.h"

namespace nnlab::server {
namespace {

v1::JobSpec Valid() {
  v1::JobSpec s;
  s.set_model_id("m");
  s.set_dataset("d");
  return s;
}

TEST(JobSpecTest, DefaultsOfUnsetFields) {
  const EffectiveSpec e = EffectiveOf(Valid());
  EXPECT_EQ(e.epochs, 1);
  EXPECT_EQ(e.batch_size, 32);
  EXPECT_EQ(e.stats_every, 1);
  EXPECT_EQ(e.gan_d_steps, 1);
  v1::JobSpec s = Valid();
  s.set_epochs(3);
  s.set_batch_size(7);
  s.set_stats_every(-1);  // Never.
  s.set_gan_d_steps(5);
  const EffectiveSpec f = EffectiveOf(s);
  EXPECT_EQ(f.epochs, 3);
  EXPECT_EQ(f.batch_size, 7);
  EXPECT_EQ(f.stats_every, 0);
  EXPECT_EQ(f.gan_d_steps, 5);
  s.set_stats_every(4);
  EXPECT_EQ(EffectiveOf(s).stats_every, 4);
}

TEST(JobSpecTest, EachBadFieldIsRejectedByName) {
  struct Case {
    std::string field;
    void (*mutate)(v1::JobSpec*);
  };
  const std::vector<Case> cases = {
      {"spec.gan_d_steps", [](v1::JobSpec* s) { s->set_gan_d_steps(-1); }},
      {"spec.gan_d_steps", [](v1::JobSpec* s) { s->set_gan_d_steps(101); }},
      {"spec.dataset", [](v1::JobSpec* s) { s->clear_dataset(); }},
      {"spec.optimizer.learning_rate",
       [](v1::JobSpec* s) { s->mutable_optimizer()->set_learning_rate(-1); }},
      {"spec.optimizer.kind",
       [](v1::JobSpec* s) {
         s->mutable_optimizer()->set_kind(static_cast<v1::OptimizerKind>(99));
       }},
      {"spec.epochs", [](v1::JobSpec* s) { s->set_epochs(-1); }},
      {"spec.epochs", [](v1::JobSpec* s) { s->set_epochs(10001); }},
      {"spec.batch_size", [](v1::JobSpec* s) { s->set_batch_size(-1); }},
      {"spec.batch_size", [](v1::JobSpec* s) { s->set_batch_size(65537); }},
      {"spec.eval_every_steps",
       [](v1::JobSpec* s) { s->set_eval_every_steps(-1); }},
      {"spec.checkpoint_every_steps",
       [](v1::JobSpec* s) { s->set_checkpoint_every_steps(-1); }},
      {"spec.stats_every", [](v1::JobSpec* s) { s->set_stats_every(-2); }},
      {"spec.max_train_samples",
       [](v1::JobSpec* s) { s->set_max_train_samples(-1); }},
      {"spec.max_steps", [](v1::JobSpec* s) { s->set_max_steps(-1); }},
      {"spec.label",
       [](v1::JobSpec* s) { s->set_label(std::string(257, 'x')); }},
  };
  ASSERT_TRUE(ValidateJobSpecFields(Valid()).ok());
  for (const Case& c : cases) {
    v1::JobSpec s = Valid();
    c.mutate(&s);
    absl::Status st = ValidateJobSpecFields(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(st.message().find(c.field), absl::string_view::npos)
        << c.field << ": " << st;
  }
  v1::JobSpec s = Valid();
  s.set_batch_size(70000);
  EXPECT_EQ(CheckJobBatchSize(s).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(CheckJobBatchSize(s).message().find("got 70000"),
            absl::string_view::npos);
}

TEST(JobSpecTest, BoundariesAreAccepted) {
  v1::JobSpec s = Valid();
  s.set_gan_d_steps(100);
  s.set_epochs(10000);
  s.set_batch_size(65536);
  s.set_stats_every(-1);
  s.set_label(std::string(256, 'x'));
  EXPECT_TRUE(ValidateJobSpecFields(s).ok());
  EXPECT_TRUE(CheckJobBatchSize(s).ok());
}

TEST(JobSpecTest, StepCounts) {
  v1::JobSpec s = Valid();
  s.set_batch_size(10);
  s.set_epochs(3);
  EXPECT_EQ(TrainSamples(s, 95), 95);
  EXPECT_EQ(StepsPerEpoch(s, 95), 10);  // The last batch is partial.
  EXPECT_EQ(TotalSteps(s, 95), 30);
  s.set_max_train_samples(40);
  EXPECT_EQ(TrainSamples(s, 95), 40);
  EXPECT_EQ(TrainSamples(s, 30), 30);
  s.set_max_steps(25);
  EXPECT_EQ(TotalSteps(s, 95), 25);
  s.set_max_steps(1000);
  EXPECT_EQ(TotalSteps(s, 95), 30);
  EXPECT_EQ(StepsPerEpoch(Valid(), 64), 2);  // Default batch 32.
}

TEST(JobSpecTest, CheckpointsEveryNStepsOrAtEpochEnds) {
  v1::JobSpec s = Valid();
  EXPECT_FALSE(CheckpointDue(s, 7, /*epoch_end=*/false));
  EXPECT_TRUE(CheckpointDue(s, 7, /*epoch_end=*/true));
  s.set_checkpoint_every_steps(5);
  EXPECT_FALSE(CheckpointDue(s, 7, /*epoch_end=*/true));
  EXPECT_TRUE(CheckpointDue(s, 10, /*epoch_end=*/false));
}

// A model on 2 inputs with `out` softmax outputs, in a fresh registry.
class AgainstModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_unique<ModelRegistry>(dir_.path(), limits_, 10);
    ASSERT_TRUE(registry_->Load().ok());
  }
  std::shared_ptr<ModelEntry> Model(int64_t out, v1::LossKind loss) {
    v1::CreateModelRequest req;
    v1::ModelSpec* m = req.mutable_spec();
    m->set_name("m");
    m->add_input_shape(2);
    m->add_layers()->mutable_dense()->set_units(out);
    m->set_loss(loss);
    auto e = registry_->Create(req);
    EXPECT_TRUE(e.ok()) << e.status();
    return *e;
  }
  // `n` samples of shape [2]; class labels when `classes` > 0, else
  // targets [1].
  static DatasetPair Data(int n, int classes) {
    Tensor x(Shape{n, 2});
    Tensor y(classes > 0 ? Shape{n} : Shape{n, 1});
    for (int64_t i = 0; i < y.size(); ++i) {
      y.data()[i] = classes > 0 ? float(i % classes) : 0.5f;
    }
    DatasetPair p;
    p.train = *TensorDataset::Create(std::move(x), std::move(y), classes);
    return p;
  }

  testing::ScratchDir dir_;
  Limits limits_;
  std::unique_ptr<ModelRegistry> registry_;
};

TEST_F(AgainstModelTest, ShapesAndClassesMustFit) {
  const auto model = Model(3, v1::LOSS_SOFTMAX_CROSS_ENTROPY);
  v1::JobSpec s = Valid();
  s.set_batch_size(10);
  auto total = CheckJobSpecAgainst(s, *model, Data(95, 3), limits_);
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(*total, 10);
  // More classes than outputs.
  absl::Status st =
      CheckJobSpecAgainst(s, *model, Data(95, 4), limits_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("has 4 classes"), absl::string_view::npos) << st;
  // Regression targets [1] against 3 outputs.
  st = CheckJobSpecAgainst(s, *model, Data(95, 0), limits_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("has targets [1]"), absl::string_view::npos)
      << st;
  // A reshape to another element count, and one the model does not take.
  s.add_sample_shape(3);
  st = CheckJobSpecAgainst(s, *model, Data(95, 3), limits_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("spec.sample_shape [3] has 3 elements"),
            absl::string_view::npos)
      << st;
  s.clear_sample_shape();
  s.add_sample_shape(1);
  s.add_sample_shape(2);
  st = CheckJobSpecAgainst(s, *model, Data(95, 3), limits_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("(after spec.sample_shape)"),
            absl::string_view::npos)
      << st;
}

TEST_F(AgainstModelTest, BatchMustFitTheModelsBuffers) {
  const auto model = Model(3, v1::LOSS_SOFTMAX_CROSS_ENTROPY);
  v1::JobSpec s = Valid();
  EXPECT_TRUE(CheckJobBatchFits(s, *model, limits_).ok());
  Limits tight = limits_;
  // A limit just under what the default batch of 32 needs.
  const double per_sample =
      EstimateSampleElements(model->spec(ModelPart::kMain));
  ASSERT_GT(per_sample, 0);
  tight.max_tensor_elements = static_cast<int64_t>(per_sample * 32) - 1;
  absl::Status st = CheckJobBatchFits(s, *model, tight);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message().rfind("spec.batch_size: ", 0), 0u) << st;
  s.set_batch_size(16);
  EXPECT_TRUE(CheckJobBatchFits(s, *model, tight).ok());
}

}  // namespace
}  // namespace nnlab::server

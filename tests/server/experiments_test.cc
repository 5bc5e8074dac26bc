// The lecture's gradient experiments as jobs over loopback, on the MNIST
// digits: Nielsen's ch. 5 network (examples/nielsen_ch5.textproto) reports
// the core's learning speeds, and the exploding-gradient spec
// (examples/exploding_gradients.textproto) collapses without clipping and
// keeps learning with it; 250 such layers overflow float32.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/convert.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

v1::ModelSpec ExampleSpec(const std::string& file) {
  std::ifstream f(absl::StrCat(NNLAB_SOURCE_DIR, "/examples/", file));
  std::stringstream text;
  text << f.rdbuf();
  v1::ModelSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text.str(), &spec))
      << file;
  return spec;
}

v1::JobSpec MnistSgd(const std::string& model, double lr, int64_t batch,
                     int64_t steps) {
  v1::JobSpec spec;
  spec.set_model_id(model);
  spec.set_dataset("mnist");
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(lr);
  spec.set_batch_size(batch);
  spec.set_max_steps(steps);
  spec.set_stats_every(1);
  return spec;
}

// The job's PHASE_TRAIN events, in step order.
std::vector<v1::MetricEvent> TrainEvents(Client& c, const v1::Job& job) {
  v1::StreamMetricsRequest req;
  req.set_job_id(job.job_id());
  grpc::Status st;
  std::vector<v1::MetricEvent> out;
  for (v1::MetricEvent& e : ReadStream(c, req, &st)) {
    if (e.phase() == v1::PHASE_TRAIN) out.push_back(std::move(e));
  }
  EXPECT_TRUE(st.ok()) << st.error_message();
  return out;
}

TEST(ExperimentsTest, NielsenSpecStreamsTheCoresLearningSpeeds) {
  TestServer server;
  Client c = server.MakeClient();
  const v1::ModelSpec proto = ExampleSpec("nielsen_ch5.textproto");
  CreateModel(c, proto, "nielsen");
  v1::JobSpec js = MnistSgd("nielsen", 0.1, 1000, 1);
  js.set_no_shuffle(true);  // The first 1,000 training digits.
  std::vector<v1::MetricEvent> events = TrainEvents(c, StartJob(c, js));
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].layers_size(), 5);  // Four hidden, one output.

  // The same spec built by the core in-process, same digits.
  auto spec = server::ModelSpecFromProto(proto, "spec", server::Limits());
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto model = Model::Build(*spec);
  ASSERT_TRUE(model.ok()) << model.status();
  auto data = LoadMnist(DefaultDatasetsDir());
  ASSERT_TRUE(data.ok()) << data.status();
  std::vector<int64_t> first(1000);
  for (int i = 0; i < 1000; ++i) first[i] = i;
  Tensor x, y, grad;
  data->train->Gather(first, &x, &y);
  (*model)->ZeroGrad();
  (*model)->loss()->Compute((*model)->Forward(x, Mode::kTrain), y, &grad);
  (*model)->Backward(grad);
  const std::vector<LayerStats> want = (*model)->CollectLayerStats(nullptr);
  ASSERT_EQ(want.size(), 5u);
  for (int l = 0; l < 5; ++l) {
    EXPECT_NEAR(events[0].layers(l).grad_bias_norm(), want[l].grad_bias_norm,
                1e-5 * want[l].grad_bias_norm)
        << want[l].name;
  }
  // The book's picture: each hidden layer slower than the next.
  for (int l = 0; l + 2 < 5; ++l) {
    EXPECT_LT(events[0].layers(l).grad_bias_norm(),
              events[0].layers(l + 1).grad_bias_norm());
  }
}

double MeanLoss(const std::vector<v1::MetricEvent>& events, size_t from) {
  double sum = 0;
  for (size_t i = from; i < events.size(); ++i) sum += events[i].loss();
  return sum / double(events.size() - from);
}

TEST(ExperimentsTest, ExplodingGradientsCollapseUnclippedAndLearnClipped) {
  TestServer server;
  Client c = server.MakeClient();
  std::vector<v1::MetricEvent> runs[2];
  for (int clip = 0; clip < 2; ++clip) {
    // A fresh model each: a job trains its model's weights in place.
    const std::string model = absl::StrCat("exploding", clip);
    CreateModel(c, ExampleSpec("exploding_gradients.textproto"), model);
    v1::JobSpec js = MnistSgd(model, 1.0, 10, 40);
    js.mutable_optimizer()->set_clip_norm(clip);
    v1::Job job = StartJob(c, js);
    runs[clip] = TrainEvents(c, job);
    v1::Job done = WaitForJob(c, job.job_id());
    EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
    ASSERT_EQ(runs[clip].size(), 40u);
    // Step 1 in both: the learning speed grows towards the input, ten
    // hidden layers (dense0 .. dense18) by more than 10x.
    const v1::MetricEvent& first = runs[clip][0];
    ASSERT_EQ(first.layers_size(), 11);
    EXPECT_GT(first.layers(0).grad_bias_norm(),
              10 * first.layers(9).grad_bias_norm());
    EXPECT_GT(first.grad_norm(), 100);  // Before clipping.
  }
  const std::vector<v1::MetricEvent>& plain = runs[0];
  const std::vector<v1::MetricEvent>& clipped = runs[1];
  // Unclipped, the first step saturates the net: dense0's speed collapses
  // by orders of magnitude and the loss jumps.
  EXPECT_LT(plain.back().layers(0).grad_bias_norm(),
            1e-4 * plain[0].layers(0).grad_bias_norm());
  EXPECT_GT(MeanLoss(plain, 30), 2 * plain[0].loss());
  // Clipped to norm 1, dense0 keeps its speed, and the loss stays far
  // below the unclipped run's.
  for (const v1::MetricEvent& e : clipped) {
    EXPECT_GT(e.layers(0).grad_bias_norm(),
              0.2 * clipped[0].layers(0).grad_bias_norm())
        << "step " << e.step();
  }
  EXPECT_LT(MeanLoss(clipped, 30), 0.5 * MeanLoss(plain, 30));
}

TEST(ExperimentsTest, DeepExplodingNetFailsNamingTheLayer) {
  TestServer server;
  Client c = server.MakeClient();
  v1::ModelSpec deep = ExampleSpec("exploding_gradients.textproto");
  deep.clear_layers();
  for (int i = 0; i < 250; ++i) {
    deep.add_layers()->mutable_dense()->set_units(256);
    deep.add_layers()->mutable_sigmoid();
  }
  deep.add_layers()->mutable_dense()->set_units(10);
  CreateModel(c, deep, "deep");
  // Clipping cannot rescale an infinity: both runs stop at step 1 (a failed
  // step leaves the weights as they were, so both start from the same).
  for (int clip = 0; clip < 2; ++clip) {
    v1::JobSpec js = MnistSgd("deep", 1.0, 10, 5);
    js.mutable_optimizer()->set_clip_norm(clip);
    v1::Job done = WaitForJob(c, StartJob(c, js).job_id());
    EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
    EXPECT_THAT(
        done.failure_reason(),
        ::testing::HasSubstr("step 1: gradient of dense0.weight is not finite "
                             "(exploding gradient)"));
  }
}

}  // namespace
}  // namespace nnlab::testing

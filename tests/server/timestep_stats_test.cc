// Per-time-step gradient norms ||dE/dh_t|| of recurrent layers on the wire
// (LayerStats.timestep_grad_norms): the down-sampling rule, and a real
// recurrent job's events over loopback.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/convert.h"
#include "server/storage.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

TEST(TimestepSampleTest, KeepsShortSequencesWhole) {
  EXPECT_TRUE(server::TimestepSample(0).empty());
  EXPECT_EQ(server::TimestepSample(1), std::vector<int64_t>{0});
  const std::vector<int64_t> all = server::TimestepSample(64);
  ASSERT_EQ(all.size(), 64u);
  for (int64_t t = 0; t < 64; ++t) EXPECT_EQ(all[t], t);
}

TEST(TimestepSampleTest, LongSequencesGetSixtyFourEvenlySpacedSteps) {
  for (int64_t steps : {65, 100, 127, 1000, 100000}) {
    const std::vector<int64_t> picked = server::TimestepSample(steps);
    ASSERT_EQ(picked.size(), 64u) << steps;
    EXPECT_EQ(picked.front(), 0);
    EXPECT_EQ(picked.back(), steps - 1);
    for (size_t i = 0; i < picked.size(); ++i) {
      // round(i (T - 1) / 63).
      EXPECT_EQ(picked[i], std::llround(double(i) * (steps - 1) / 63.0))
          << steps << " " << i;
      if (i > 0) {
        EXPECT_GT(picked[i], picked[i - 1]);
      }
    }
  }
}

TEST(TimestepSampleTest, ConversionCopiesTheSampledNorms) {
  LayerStats s;
  s.name = "rnn0";
  for (int t = 0; t < 200; ++t) s.timestep_grad_norms.push_back(t * 0.5);
  v1::LayerStats p;
  server::LayerStatsToProto(s, &p);
  ASSERT_EQ(p.timestep_grad_norms_size(), 64);
  ASSERT_EQ(p.timestep_indices_size(), 64);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(p.timestep_grad_norms(i), p.timestep_indices(i) * 0.5);
  }
  LayerStats dense;  // Not recurrent: nothing.
  v1::LayerStats q;
  server::LayerStatsToProto(dense, &q);
  EXPECT_EQ(q.timestep_grad_norms_size(), 0);
  EXPECT_EQ(q.timestep_indices_size(), 0);
}

// `n` sequences [steps, 1] of N(0, 1) noise labelled by the sign of their
// first element: the label's only evidence is at t = 0, so the gradient
// has to travel back through every step.
std::string UploadFirstSign(Client& c, int n, int steps) {
  std::mt19937 gen(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(n) * steps), y(n);
  for (int i = 0; i < n; ++i) {
    for (int t = 0; t < steps; ++t) x[size_t(i) * steps + t] = normal(gen);
    y[i] = x[size_t(i) * steps] > 0 ? 1.0f : 0.0f;
  }
  std::string payload(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  payload.append(reinterpret_cast<const char*>(y.data()), y.size() * 4);
  auto ctx = Ctx();
  v1::DatasetInfo info;
  auto writer = c.training->UploadDataset(ctx.get(), &info);
  v1::UploadDatasetRequest req;
  v1::DatasetHeader* h = req.mutable_header();
  h->set_name("first-sign");
  h->add_sample_shape(steps);
  h->add_sample_shape(1);
  h->set_num_classes(2);
  h->set_num_samples(n);
  h->set_crc32c(server::Crc32c(payload));
  EXPECT_TRUE(writer->Write(req));
  v1::UploadDatasetRequest part;
  part.set_chunk(payload);
  EXPECT_TRUE(writer->Write(part));
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  return info.dataset_id();
}

// [steps, 1] -> rnn or lstm (8 units, many-to-one) -> dense 2.
v1::ModelSpec SequenceClassifier(bool lstm, int steps) {
  v1::ModelSpec s;
  s.set_name(lstm ? "lstm" : "rnn");
  s.add_input_shape(steps);
  s.add_input_shape(1);
  v1::LayerSpec* rec = s.add_layers();
  (lstm ? rec->mutable_lstm() : rec->mutable_rnn())->set_units(8);
  s.add_layers()->mutable_dense()->set_units(2);
  s.set_init(v1::INIT_GLOROT);
  return s;
}

struct Case {
  bool lstm;
  int steps;
  int want_points;
};

TEST(TimestepStatsTest, RecurrentJobsStreamPerStepNormsOnStatsSteps) {
  TestServer server;
  Client c = server.MakeClient();
  for (const Case& k :
       {Case{false, 100, 64}, Case{true, 100, 64}, Case{false, 20, 20}}) {
    SCOPED_TRACE(absl::StrCat(k.lstm ? "lstm" : "rnn", " T=", k.steps));
    const std::string ds = UploadFirstSign(c, 64, k.steps);
    const std::string model = absl::StrCat(k.lstm ? "lstm" : "rnn", k.steps);
    CreateModel(c, SequenceClassifier(k.lstm, k.steps), model);
    v1::JobSpec spec;
    spec.set_model_id(model);
    spec.set_dataset(ds);
    spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
    spec.mutable_optimizer()->set_learning_rate(0.01f);
    spec.set_batch_size(16);
    spec.set_epochs(2);  // 8 steps.
    spec.set_stats_every(3);
    v1::Job job = StartJob(c, spec);
    v1::StreamMetricsRequest sreq;
    sreq.set_job_id(job.job_id());
    grpc::Status st;
    std::vector<v1::MetricEvent> events = ReadStream(c, sreq, &st);
    ASSERT_TRUE(st.ok()) << st.error_message();
    std::vector<int64_t> stats_steps;
    for (const v1::MetricEvent& e : events) {
      if (e.phase() != v1::PHASE_TRAIN || e.layers_size() == 0) continue;
      stats_steps.push_back(e.step());
      ASSERT_EQ(e.layers_size(), 2);
      const v1::LayerStats& rec = e.layers(0);
      EXPECT_EQ(rec.kind(), k.lstm ? "lstm" : "rnn");
      ASSERT_EQ(rec.timestep_grad_norms_size(), k.want_points);
      ASSERT_EQ(rec.timestep_indices_size(), k.want_points);
      EXPECT_EQ(rec.timestep_indices(0), 0);
      EXPECT_EQ(rec.timestep_indices(k.want_points - 1), k.steps - 1);
      for (double v : rec.timestep_grad_norms()) {
        EXPECT_TRUE(std::isfinite(v));
        EXPECT_GE(v, 0);
      }
      // Many-to-one: the output's gradient enters at the last step.
      EXPECT_GT(rec.timestep_grad_norms(k.want_points - 1), 0);
      EXPECT_EQ(e.layers(1).timestep_grad_norms_size(), 0);  // Dense.
    }
    // stats_every 3: steps 1, 4, 7.
    EXPECT_EQ(stats_steps, (std::vector<int64_t>{1, 4, 7}));
  }
}

}  // namespace
}  // namespace nnlab::testing

// Sweeps: trial expansion, the median stopping rule, and the SweepService
// on a real server over loopback (tiny jobs on an uploaded blobs data set).
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nnlab/v1/sweep.grpc.pb.h"
#include "server/sweeps.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

using server::ExpandSweep;
using server::MedianStopReason;

v1::SweepAxis Axis(const std::string& field,
                   const std::vector<std::string>& values) {
  v1::SweepAxis a;
  a.set_field(field);
  for (const auto& v : values) a.add_values(v);
  return a;
}

v1::SweepSpec BaseSpec() {
  v1::SweepSpec s;
  *s.mutable_model() = MlpSpec(2, 8, 2);
  s.mutable_job()->set_dataset("mnist");
  return s;
}

std::string Describe(const std::vector<v1::SweepParam>& ps) {
  std::string out;
  for (const auto& p : ps) out += p.field() + "=" + p.value() + " ";
  return out;
}

TEST(SweepExpandTest, GridIsTheProductFirstAxisSlowest) {
  v1::SweepSpec s = BaseSpec();
  *s.add_axes() = Axis("job.optimizer.learning_rate", {"0.1", "0.01"});
  *s.add_axes() = Axis("model.seed", {"1", "2", "3"});
  auto trials = ExpandSweep(s);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 6u);
  EXPECT_EQ(Describe((*trials)[0]),
            "job.optimizer.learning_rate=0.1 model.seed=1 ");
  EXPECT_EQ(Describe((*trials)[2]),
            "job.optimizer.learning_rate=0.1 model.seed=3 ");
  EXPECT_EQ(Describe((*trials)[3]),
            "job.optimizer.learning_rate=0.01 model.seed=1 ");
  EXPECT_EQ(Describe((*trials)[5]),
            "job.optimizer.learning_rate=0.01 model.seed=3 ");
}

TEST(SweepExpandTest, ParamsApplyToTheSpecs) {
  v1::ModelSpec model = MlpSpec(2, 8, 2);
  model.add_layers()->mutable_dropout();
  v1::JobSpec job;
  v1::SweepParam p;
  p.set_field("job.optimizer");
  p.set_value("kind: OPTIMIZER_ADAM learning_rate: 0.001");
  ASSERT_TRUE(server::ApplySweepParam(p, &model, &job).ok());
  EXPECT_EQ(job.optimizer().kind(), v1::OPTIMIZER_ADAM);
  EXPECT_FLOAT_EQ(job.optimizer().learning_rate(), 0.001f);
  p.set_field("model.activation");
  p.set_value("sigmoid");
  ASSERT_TRUE(server::ApplySweepParam(p, &model, &job).ok());
  EXPECT_TRUE(model.layers(1).has_sigmoid());
  p.set_field("model.dropout_keep_prob");
  p.set_value("0.8");
  ASSERT_TRUE(server::ApplySweepParam(p, &model, &job).ok());
  EXPECT_FLOAT_EQ(model.layers(3).dropout().keep_prob(), 0.8f);
  p.set_field("model.init");
  p.set_value("INIT_GLOROT");
  ASSERT_TRUE(server::ApplySweepParam(p, &model, &job).ok());
  EXPECT_EQ(model.init(), v1::INIT_GLOROT);
  p.set_field("job.batch_size");
  p.set_value("64");
  ASSERT_TRUE(server::ApplySweepParam(p, &model, &job).ok());
  EXPECT_EQ(job.batch_size(), 64);
  p.set_field("model");
  p.set_value("input_shape: [3] layers { dense { units: 4 } }");
  ASSERT_TRUE(server::ApplySweepParam(p, &model, &job).ok());
  EXPECT_EQ(model.input_shape(0), 3);
  EXPECT_EQ(model.layers_size(), 1);
  p.set_value("layers { nope {} }");
  EXPECT_FALSE(server::ApplySweepParam(p, &model, &job).ok());
}

TEST(SweepExpandTest, RandomSearchIsDeterministicWithASeed) {
  v1::SweepSpec s = BaseSpec();
  s.set_random_trials(20);
  s.set_seed(42);
  v1::SweepAxis lr;
  lr.set_field("job.optimizer.learning_rate");
  lr.set_min(1e-4);
  lr.set_max(1e-1);
  lr.set_log_scale(true);
  *s.add_axes() = lr;
  v1::SweepAxis bs;
  bs.set_field("job.batch_size");
  bs.set_min(8);
  bs.set_max(128);
  *s.add_axes() = bs;
  *s.add_axes() = Axis("model.activation", {"sigmoid", "relu", "tanh"});
  auto a = ExpandSweep(s);
  auto b = ExpandSweep(s);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->size(), 20u);
  int relu = 0;
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ(Describe((*a)[i]), Describe((*b)[i]));
    const double x = std::stod((*a)[i][0].value());
    EXPECT_GE(x, 1e-4);
    EXPECT_LE(x, 1e-1);
    const std::string& batch = (*a)[i][1].value();
    EXPECT_EQ(batch.find('.'), std::string::npos) << batch;
    EXPECT_GE(std::stoi(batch), 8);
    EXPECT_LE(std::stoi(batch), 128);
    relu += (*a)[i][2].value() == "relu";
  }
  EXPECT_GT(relu, 0);
  EXPECT_LT(relu, 20);
  s.set_seed(43);
  auto c = ExpandSweep(s);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(Describe((*a)[0]) + Describe((*a)[1]),
            Describe((*c)[0]) + Describe((*c)[1]));
}

TEST(SweepExpandTest, BadSpecsNameTheField) {
  struct Case {
    std::function<void(v1::SweepSpec*)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](v1::SweepSpec* s) { *s->add_axes() = Axis("job.nope", {"1"}); },
       "spec.axes[0].field"},
      {[](v1::SweepSpec* s) { *s->add_axes() = Axis("lr", {"1"}); },
       "job.<field> or model.<field>"},
      {[](v1::SweepSpec* s) { *s->add_axes() = Axis("job.batch_size", {}); },
       "spec.axes[0].values"},
      {[](v1::SweepSpec* s) { *s->add_axes() = Axis("job.batch_size", {"x"}); },
       "spec.axes[0]: \"job.batch_size\""},
      {[](v1::SweepSpec* s) {
         *s->add_axes() = Axis("model.input_shape", {"1"});
       },
       "repeated"},
      {[](v1::SweepSpec* s) { s->mutable_job()->set_model_id("m"); },
       "spec.job.model_id"},
      {[](v1::SweepSpec* s) { s->set_max_concurrent(-1); },
       "spec.max_concurrent"},
      {[](v1::SweepSpec* s) {
         *s->add_axes() = Axis("job.batch_size", {"1000000"});
       },
       "batch_size"},
      {[](v1::SweepSpec* s) {
         *s->add_axes() = Axis("model.dropout_keep_prob", {"0.5"});
       },
       "no dropout layer"},
  };
  for (const Case& c : cases) {
    v1::SweepSpec s = BaseSpec();
    c.edit(&s);
    auto r = ExpandSweep(s);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.message), absl::string_view::npos)
        << r.status();
  }
}

// A sweep whose trials have the given evaluations (metric: accuracy).
v1::Sweep WithEvals(const std::vector<std::vector<std::pair<int, double>>>& e,
                    int64_t min_steps) {
  v1::Sweep sweep;
  sweep.mutable_spec()->mutable_early_stopping()->set_enabled(true);
  sweep.mutable_spec()->mutable_early_stopping()->set_min_steps(min_steps);
  for (size_t i = 0; i < e.size(); ++i) {
    v1::SweepTrial* t = sweep.add_trials();
    t->set_index(static_cast<int>(i));
    for (auto [step, v] : e[i]) {
      t->add_eval_steps(step);
      t->add_eval_values(v);
    }
  }
  return sweep;
}

TEST(SweepMedianRuleTest, StopsOnlyATrialWorseThanTheMedianAtItsStep) {
  // Trial 2 is behind both others at step 20.
  v1::Sweep s = WithEvals({{{10, 0.5}, {20, 0.8}, {30, 0.9}},
                           {{10, 0.4}, {20, 0.7}},
                           {{10, 0.3}, {20, 0.35}}},
                          10);
  auto why = MedianStopReason(s, 2);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("at step 20"), std::string::npos) << *why;
  EXPECT_FALSE(MedianStopReason(s, 0).has_value());
  // Trial 1 is judged at step 20 (the others reached it): median of 0.8
  // and 0.35 is 0.575 < 0.7.
  EXPECT_FALSE(MedianStopReason(s, 1).has_value());
  // Before min_steps nothing stops.
  EXPECT_FALSE(MedianStopReason(WithEvals({{{10, 0.9}}, {{10, 0.1}}}, 20), 1)
                   .has_value());
  // Off by default.
  v1::Sweep off = s;
  off.mutable_spec()->clear_early_stopping();
  EXPECT_FALSE(MedianStopReason(off, 2).has_value());
  // A trial ahead of the others is judged at the last step they reached.
  v1::Sweep ahead = WithEvals({{{10, 0.1}, {20, 0.9}}, {{10, 0.6}}}, 0);
  why = MedianStopReason(ahead, 0);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("at step 10"), std::string::npos) << *why;
}

// The service on a real server.
class SweepServiceTest : public ::testing::Test {
 protected:
  static server::ServerOptions Options() {
    server::ServerOptions o;
    o.max_jobs = 3;
    return o;
  }
  void Connect(TestServer* s) {
    client_ = std::make_unique<Client>(s->MakeClient());
    sweeps_ = v1::SweepService::NewStub(s->Channel());
  }
  // A spec on the blobs data set: batches of 8 from 960 samples.
  v1::SweepSpec Spec(const std::string& dataset) {
    v1::SweepSpec s;
    *s.mutable_model() = MlpSpec(2, 8, 2);
    v1::JobSpec* j = s.mutable_job();
    j->set_dataset(dataset);
    j->set_batch_size(8);
    j->set_epochs(10000);  // Jobs end by max_steps, or never.
    j->set_eval_every_steps(5);
    j->set_stats_every(-1);
    j->mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
    j->mutable_optimizer()->set_learning_rate(0.5f);
    return s;
  }
  grpc::Status StartSweep(const v1::SweepSpec& spec, v1::Sweep* out) {
    v1::StartSweepRequest req;
    *req.mutable_spec() = spec;
    auto ctx = Ctx();
    return sweeps_->StartSweep(ctx.get(), req, out);
  }
  v1::Sweep Get(const std::string& id) {
    v1::GetSweepRequest req;
    req.set_sweep_id(id);
    v1::Sweep s;
    auto ctx = Ctx();
    grpc::Status st = sweeps_->GetSweep(ctx.get(), req, &s);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return s;
  }
  template <typename Pred>
  v1::Sweep WaitSweep(const std::string& id, Pred pred, int seconds = 60) {
    v1::Sweep s;
    const auto end = Deadline(seconds);
    while (std::chrono::system_clock::now() < end) {
      s = Get(id);
      if (pred(s)) return s;
      usleep(20000);
    }
    ADD_FAILURE() << "sweep " << id << " timed out: " << s.DebugString();
    return s;
  }
  template <typename Req>
  grpc::Status Act(grpc::Status (v1::SweepService::Stub::*rpc)(
                       grpc::ClientContext*, const Req&, v1::Sweep*),
                   const std::string& id, v1::Sweep* out) {
    Req req;
    req.set_sweep_id(id);
    auto ctx = Ctx();
    return (sweeps_.get()->*rpc)(ctx.get(), req, out);
  }

  std::unique_ptr<Client> client_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(SweepServiceTest, RunsAtMostKAtOnceAndRanksTrials) {
  TestServer server(Options());
  Connect(&server);
  const std::string data = UploadBlobs(*client_, 1024, 64);
  v1::SweepSpec spec = Spec(data);
  spec.mutable_job()->set_max_steps(20);
  spec.set_max_concurrent(2);
  *spec.add_axes() =
      Axis("job.optimizer.learning_rate", {"0.5", "1e-9", "0.1"});
  *spec.add_axes() = Axis("model.seed", {"1", "2"});
  v1::Sweep sweep;
  grpc::Status st = StartSweep(spec, &sweep);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(sweep.trials_size(), 6);
  sweep = WaitSweep(sweep.sweep_id(), [](const v1::Sweep& s) {
    return s.state() == v1::SWEEP_STATE_COMPLETED;
  });
  EXPECT_EQ(sweep.max_active(), 2);
  // From the job manager's own records: at each job's creation, at most two
  // of the sweep's jobs had been created and not ended.
  std::vector<v1::Job> jobs;
  for (const v1::SweepTrial& t : sweep.trials()) {
    EXPECT_EQ(t.state(), v1::JOB_STATE_COMPLETED) << t.DebugString();
    EXPECT_EQ(t.step(), 20);
    EXPECT_TRUE(t.has_metric());
    jobs.push_back(GetJob(*client_, t.job_id()));
    EXPECT_EQ(jobs.back().spec().label(),
              absl::StrCat("sweep ", sweep.sweep_id(), " trial ", t.index()));
  }
  auto ns = [](const google::protobuf::Timestamp& t) {
    return t.seconds() * 1000000000LL + t.nanos();
  };
  int most = 0;
  for (const v1::Job& a : jobs) {
    int active = 0;
    for (const v1::Job& b : jobs) {
      active += ns(b.create_time()) <= ns(a.create_time()) &&
                ns(a.create_time()) < ns(b.end_time());
    }
    most = std::max(most, active);
  }
  EXPECT_GE(most, 1);
  EXPECT_LE(most, 2);
  // Ranked by accuracy: the lr 1e-9 trials (2 and 3) learn nothing.
  ASSERT_EQ(sweep.ranking_size(), 6);
  for (int i = 0; i + 1 < 6; ++i) {
    EXPECT_GE(sweep.trials(sweep.ranking(i)).best_metric(),
              sweep.trials(sweep.ranking(i + 1)).best_metric());
  }
  EXPECT_NE(sweep.ranking(0), 2);
  EXPECT_NE(sweep.ranking(0), 3);
  // Listed.
  v1::ListSweepsResponse list;
  auto ctx = Ctx();
  ASSERT_TRUE(
      sweeps_->ListSweeps(ctx.get(), v1::ListSweepsRequest(), &list).ok());
  ASSERT_EQ(list.sweeps_size(), 1);
  EXPECT_EQ(list.sweeps(0).sweep_id(), sweep.sweep_id());
}

TEST_F(SweepServiceTest, MedianRuleStopsAClearlyWorseTrial) {
  TestServer server(Options());
  Connect(&server);
  const std::string data = UploadBlobs(*client_, 1024, 64);
  v1::SweepSpec spec = Spec(data);
  spec.mutable_job()->set_max_steps(1000000);  // Cannot finish first.
  spec.set_max_concurrent(3);
  spec.set_metric(v1::SWEEP_METRIC_TEST_LOSS);
  spec.mutable_early_stopping()->set_enabled(true);
  spec.mutable_early_stopping()->set_min_steps(20);
  spec.mutable_early_stopping()->set_min_trials(2);
  *spec.add_axes() =
      Axis("job.optimizer.learning_rate", {"0.5", "0.4", "1e-9"});
  v1::Sweep sweep;
  ASSERT_TRUE(StartSweep(spec, &sweep).ok());
  sweep = WaitSweep(sweep.sweep_id(), [](const v1::Sweep& s) {
    return s.trials(2).stopped_early();
  });
  const v1::SweepTrial& bad = sweep.trials(2);
  EXPECT_NE(bad.reason().find("median stopping rule"), std::string::npos)
      << bad.reason();
  EXPECT_GE(bad.eval_steps(bad.eval_steps_size() - 1), 20);
  EXPECT_EQ(WaitForJob(*client_, bad.job_id()).state(),
            v1::JOB_STATE_CANCELLED);
  EXPECT_FALSE(sweep.trials(0).stopped_early());
  EXPECT_FALSE(sweep.trials(1).stopped_early());
  // The sweep goes on; cancelling it ends the rest.
  v1::Sweep out;
  ASSERT_TRUE(
      Act(&v1::SweepService::Stub::CancelSweep, sweep.sweep_id(), &out).ok());
  EXPECT_EQ(out.state(), v1::SWEEP_STATE_CANCELLED);
  sweep = WaitSweep(sweep.sweep_id(), [](const v1::Sweep& s) {
    for (const auto& t : s.trials()) {
      if (t.state() != v1::JOB_STATE_CANCELLED) return false;
    }
    return true;
  });
  EXPECT_FALSE(sweep.trials(0).stopped_early());
}

TEST_F(SweepServiceTest, PauseResumeAndCancelActOnTheWholeSweep) {
  TestServer server(Options());
  Connect(&server);
  const std::string data = UploadBlobs(*client_, 1024, 64);
  v1::SweepSpec spec = Spec(data);
  spec.mutable_job()->set_max_steps(1000000);
  spec.set_max_concurrent(2);
  *spec.add_axes() = Axis("model.seed", {"1", "2", "3"});
  v1::Sweep sweep;
  ASSERT_TRUE(StartSweep(spec, &sweep).ok());
  const std::string id = sweep.sweep_id();
  sweep = WaitSweep(id, [](const v1::Sweep& s) {
    return s.trials(0).step() > 0 && s.trials(1).step() > 0;
  });
  v1::Sweep out;
  ASSERT_TRUE(Act(&v1::SweepService::Stub::PauseSweep, id, &out).ok());
  EXPECT_EQ(out.state(), v1::SWEEP_STATE_PAUSED);
  for (int i : {0, 1}) {
    EXPECT_EQ(WaitForJob(*client_, sweep.trials(i).job_id()).state(),
              v1::JOB_STATE_PAUSED);
  }
  // Paused twice: wrong state.
  EXPECT_EQ(Act(&v1::SweepService::Stub::PauseSweep, id, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  usleep(300000);  // Several scheduler passes: trial 2 must not start.
  sweep = Get(id);
  EXPECT_TRUE(sweep.trials(2).job_id().empty());
  const int64_t paused_at = GetJob(*client_, sweep.trials(0).job_id()).step();
  ASSERT_TRUE(Act(&v1::SweepService::Stub::ResumeSweep, id, &out).ok());
  EXPECT_EQ(out.state(), v1::SWEEP_STATE_RUNNING);
  WaitForStep(*client_, sweep.trials(0).job_id(), paused_at + 5);
  ASSERT_TRUE(Act(&v1::SweepService::Stub::CancelSweep, id, &out).ok());
  sweep = WaitSweep(id, [](const v1::Sweep& s) {
    return s.trials(0).state() == v1::JOB_STATE_CANCELLED &&
           s.trials(1).state() == v1::JOB_STATE_CANCELLED;
  });
  EXPECT_EQ(sweep.state(), v1::SWEEP_STATE_CANCELLED);
  EXPECT_EQ(sweep.trials(2).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(sweep.trials(2).job_id().empty());
  EXPECT_EQ(Act(&v1::SweepService::Stub::CancelSweep, id, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Act(&v1::SweepService::Stub::GetSweep, "s-nope", &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Act(&v1::SweepService::Stub::GetSweep, "../x", &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(SweepServiceTest, BadSpecsAreInvalidArgumentNamingTheField) {
  TestServer server(Options());
  Connect(&server);
  v1::SweepSpec spec = Spec("mnist");
  *spec.add_axes() = Axis("job.optimizer.lr", {"0.1"});
  v1::Sweep out;
  grpc::Status st = StartSweep(spec, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("spec.axes[0].field"), std::string::npos)
      << st.error_message();
  // A model the registry rejects fails the sweep before any job starts, and
  // leaves no model behind.
  spec = Spec("mnist");
  *spec.add_axes() = Axis("model.seed", {"1", "2"});
  spec.mutable_model()->mutable_layers(0)->mutable_dense()->set_units(0);
  st = StartSweep(spec, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("trial 0"), std::string::npos)
      << st.error_message();
  v1::ListModelsResponse models;
  auto ctx = Ctx();
  ASSERT_TRUE(
      client_->models->ListModels(ctx.get(), v1::ListModelsRequest(), &models)
          .ok());
  EXPECT_EQ(models.models_size(), 0);
}

TEST_F(SweepServiceTest, ARestartedServerCarriesOnWithTheSweep) {
  TempDir dir;
  std::string id, long_job;
  {
    TestServer server(Options(), dir.path());
    Connect(&server);
    const std::string data = UploadBlobs(*client_, 1024, 64);
    v1::SweepSpec spec = Spec(data);
    spec.mutable_job()->set_checkpoint_every_steps(10);
    spec.set_max_concurrent(1);
    // Trial 1 cannot finish before the restart.
    *spec.add_axes() = Axis("job.max_steps", {"20", "1000000", "15"});
    v1::Sweep sweep;
    ASSERT_TRUE(StartSweep(spec, &sweep).ok());
    id = sweep.sweep_id();
    sweep = WaitSweep(
        id, [](const v1::Sweep& s) { return s.trials(1).step() >= 12; });
    EXPECT_EQ(sweep.trials(0).state(), v1::JOB_STATE_COMPLETED);
    EXPECT_TRUE(sweep.trials(2).job_id().empty());
    long_job = sweep.trials(1).job_id();
  }
  TestServer server(Options(), dir.path());
  Connect(&server);
  v1::Sweep sweep = Get(id);
  EXPECT_EQ(sweep.state(), v1::SWEEP_STATE_RUNNING);
  EXPECT_EQ(sweep.trials(0).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_TRUE(sweep.trials(0).has_metric());
  EXPECT_EQ(sweep.trials(1).job_id(), long_job);
  // The interrupted job resumes and, once it ends, the sweep starts the
  // next trial by itself.
  const v1::Job resumed = WaitForStep(*client_, long_job, 25);
  EXPECT_GE(resumed.resume_count(), 1);
  Cancel(*client_, long_job);
  sweep = WaitSweep(id, [](const v1::Sweep& s) {
    return s.state() == v1::SWEEP_STATE_COMPLETED;
  });
  EXPECT_EQ(sweep.trials(1).state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(sweep.trials(2).state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(sweep.trials(2).step(), 15);
}

}  // namespace
}  // namespace nnlab::testing

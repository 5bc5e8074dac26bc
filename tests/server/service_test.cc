// Service tests: a real nnlabd server on loopback, real channels, every RPC
// on its happy path and its errors.
#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "google/protobuf/text_format.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "nnlab/v1/dataset.grpc.pb.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

using ::grpc::StatusCode;

v1::JobSpec BlobJob(const std::string& model_id, const std::string& ds) {
  v1::JobSpec spec;
  spec.set_model_id(model_id);
  spec.set_dataset(ds);
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.1f);
  spec.set_epochs(3);
  spec.set_batch_size(16);
  return spec;
}

v1::Tensor MakeTensor(std::vector<int64_t> shape, std::vector<float> data) {
  v1::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  for (float f : data) t.add_data(f);
  return t;
}

TEST(ServiceTest, ModelLifecycleAndExportImport) {
  TestServer server;
  Client c = server.MakeClient();
  v1::Model m = CreateModel(c, MlpSpec(2, 8, 2), "mlp-a");
  EXPECT_EQ(m.model_id(), "mlp-a");
  EXPECT_EQ(m.parameter_count(), 2 * 8 + 8 + 8 * 2 + 2);
  ASSERT_EQ(m.layers_size(), 3);
  EXPECT_EQ(m.layers(0).kind(), "dense");
  ASSERT_EQ(m.layers(0).params_size(), 2);
  EXPECT_EQ(m.layers(0).params(0).shape(0), 8);
  EXPECT_EQ(m.layers(0).params(0).shape(1), 2);
  ASSERT_EQ(m.output_shape_size(), 1);
  EXPECT_EQ(m.output_shape(0), 2);

  v1::Model server_named = CreateModel(c, MlpSpec(2, 4, 2));
  EXPECT_EQ(server_named.model_id().substr(0, 2), "m-");

  {  // GetModel.
    v1::GetModelRequest req;
    req.set_model_id("mlp-a");
    v1::Model got;
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->GetModel(ctx.get(), req, &got).ok());
    EXPECT_EQ(got.spec().layers_size(), 3);
    EXPECT_EQ(got.trained_steps(), 0);
  }
  {  // ListModels with paging.
    v1::ListModelsRequest req;
    req.set_page_size(1);
    v1::ListModelsResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->ListModels(ctx.get(), req, &resp).ok());
    ASSERT_EQ(resp.models_size(), 1);
    EXPECT_FALSE(resp.next_page_token().empty());
    req.set_page_token(resp.next_page_token());
    v1::ListModelsResponse page2;
    auto ctx2 = Ctx();
    ASSERT_TRUE(c.models->ListModels(ctx2.get(), req, &page2).ok());
    ASSERT_EQ(page2.models_size(), 1);
    EXPECT_NE(page2.models(0).model_id(), resp.models(0).model_id());
    EXPECT_TRUE(page2.next_page_token().empty());
  }
  // Export, import under another id: the same function.
  v1::ExportModelRequest ereq;
  ereq.set_model_id("mlp-a");
  v1::ExportModelResponse exported;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->ExportModel(ctx.get(), ereq, &exported).ok());
  }
  EXPECT_EQ(exported.file().params_size(), 4);
  v1::ImportModelRequest ireq;
  ireq.set_model_id("mlp-b");
  *ireq.mutable_file() = exported.file();
  {
    v1::Model imported;
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->ImportModel(ctx.get(), ireq, &imported).ok());
    EXPECT_EQ(imported.parameter_count(), m.parameter_count());
  }
  v1::Tensor x = MakeTensor({3, 2}, {0.5f, -1.0f, 2.0f, 0.25f, -3.0f, 1.5f});
  std::vector<float> outs[2];
  for (int i = 0; i < 2; ++i) {
    v1::InferRequest req;
    req.set_model_id(i == 0 ? "mlp-a" : "mlp-b");
    *req.mutable_inputs() = x;
    req.set_top_k(2);
    v1::InferResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.inference->Infer(ctx.get(), req, &resp).ok());
    ASSERT_EQ(resp.outputs().shape_size(), 2);
    ASSERT_EQ(resp.outputs().data_size(), 6);
    outs[i].assign(resp.outputs().data().begin(), resp.outputs().data().end());
    ASSERT_EQ(resp.predictions_size(), 3);
    ASSERT_EQ(resp.top_k_size(), 3);
    for (int r = 0; r < 3; ++r) {
      const float* o = &outs[i][r * 2];
      EXPECT_EQ(resp.predictions(r), o[1] > o[0] ? 1 : 0);
      EXPECT_EQ(resp.top_k(r).classes(0), resp.predictions(r));
      // Softmax probabilities of the two classes sum to one.
      EXPECT_NEAR(
          resp.top_k(r).probabilities(0) + resp.top_k(r).probabilities(1), 1.0,
          1e-5);
      EXPECT_NEAR(resp.top_k(r).probabilities(0),
                  1.0 / (1.0 + std::exp(-std::fabs(o[1] - o[0]))), 1e-5);
    }
  }
  EXPECT_EQ(outs[0], outs[1]);
  {  // Raw output bytes carry the same floats.
    v1::InferRequest req;
    req.set_model_id("mlp-a");
    *req.mutable_inputs() = x;
    req.set_raw_output(true);
    v1::InferResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.inference->Infer(ctx.get(), req, &resp).ok());
    ASSERT_EQ(resp.outputs().raw_data().size(), 24u);
    std::vector<float> raw(6);
    std::memcpy(raw.data(), resp.outputs().raw_data().data(), 24);
    EXPECT_EQ(raw, outs[0]);
  }
  {  // Inputs as bytes over a divisor: the floats byte / divisor.
    const std::string bytes = {'\0', '\x33', '\xff', '\x80', '\x07', '\xc8'};
    v1::InferRequest req;
    req.set_model_id("mlp-a");
    req.mutable_inputs()->add_shape(3);
    req.mutable_inputs()->add_shape(2);
    req.mutable_inputs()->set_uint8_data(bytes);
    req.mutable_inputs()->set_uint8_divisor(255.0f);
    std::vector<float> values;
    for (char b : bytes) {
      values.push_back(static_cast<float>(static_cast<uint8_t>(b)) / 255.0f);
    }
    v1::InferRequest floats;
    floats.set_model_id("mlp-a");
    *floats.mutable_inputs() = MakeTensor({3, 2}, values);
    v1::InferResponse a, b;
    auto ctx = Ctx();
    ASSERT_TRUE(c.inference->Infer(ctx.get(), req, &a).ok());
    auto ctx2 = Ctx();
    ASSERT_TRUE(c.inference->Infer(ctx2.get(), floats, &b).ok());
    ASSERT_EQ(a.outputs().data_size(), 6);
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(a.outputs().data(i), b.outputs().data(i)) << i;
    }
  }
  {  // Delete, then it is gone.
    v1::DeleteModelRequest req;
    req.set_model_id("mlp-b");
    v1::DeleteModelResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->DeleteModel(ctx.get(), req, &resp).ok());
    v1::GetModelRequest g;
    g.set_model_id("mlp-b");
    v1::Model got;
    auto ctx2 = Ctx();
    EXPECT_EQ(c.models->GetModel(ctx2.get(), g, &got).error_code(),
              StatusCode::NOT_FOUND);
  }
}

// Sigmoid-class models (Nielsen's ch. 5 output layer) are classifiers too:
// the argmax unit is the prediction, each unit's sigmoid its probability.
TEST(ServiceTest, InferSigmoidClassesPredicts) {
  TestServer server;
  Client c = server.MakeClient();
  v1::ModelSpec spec = MlpSpec(2, 8, 3);
  spec.set_loss(v1::LOSS_SIGMOID_CROSS_ENTROPY_CLASSES);
  CreateModel(c, spec, "sig");
  v1::InferRequest req;
  req.set_model_id("sig");
  *req.mutable_inputs() = MakeTensor({2, 2}, {0.5f, -1.0f, 2.0f, 0.25f});
  req.set_top_k(3);
  v1::InferResponse resp;
  auto ctx = Ctx();
  ASSERT_TRUE(c.inference->Infer(ctx.get(), req, &resp).ok());
  ASSERT_EQ(resp.predictions_size(), 2);
  ASSERT_EQ(resp.top_k_size(), 2);
  for (int r = 0; r < 2; ++r) {
    const float* z = resp.outputs().data().data() + r * 3;
    EXPECT_EQ(resp.predictions(r), std::max_element(z, z + 3) - z);
    ASSERT_EQ(resp.top_k(r).classes_size(), 3);
    for (int k = 0; k < 3; ++k) {
      const int64_t cls = resp.top_k(r).classes(k);
      EXPECT_NEAR(resp.top_k(r).probabilities(k),
                  1.0 / (1.0 + std::exp(-double(z[cls]))), 1e-5);
    }
  }
}

TEST(ServiceTest, ExampleTextprotoSpecsBuild) {
  TestServer server;
  Client c = server.MakeClient();
  struct Example {
    const char* file;
    int64_t params;
  } examples[] = {
      {"mnist_mlp_100.textproto", 784 * 100 + 100 + 100 * 10 + 10},
      {"lecture_deep_sigmoid.textproto",
       784 * 30 + 30 + 3 * (30 * 30 + 30) + 30 * 10 + 10},
  };
  for (const Example& ex : examples) {
    v1::ModelSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        ReadText(absl::StrCat(NNLAB_SOURCE_DIR, "/examples/", ex.file)), &spec))
        << ex.file;
    v1::Model m = CreateModel(c, spec);
    EXPECT_EQ(m.parameter_count(), ex.params) << ex.file;
  }
}

TEST(ServiceTest, JobOnUploadedDataStreamsAndLearns) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 320, 64, 333);
  {
    v1::ListDatasetsRequest req;
    v1::ListDatasetsResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->ListDatasets(ctx.get(), req, &resp).ok());
    // Built-ins first (chars:devil only where dict-devil is installed),
    // then uploads.
    ASSERT_GE(resp.datasets_size(), 4);
    EXPECT_EQ(resp.datasets(0).dataset_id(), "mnist");
    const v1::DatasetInfo& last = resp.datasets(resp.datasets_size() - 1);
    EXPECT_EQ(last.dataset_id(), ds);
    EXPECT_EQ(last.train_samples(), 256);
    EXPECT_EQ(last.test_samples(), 64);
  }
  CreateModel(c, MlpSpec(2, 8, 2), "blob-net");
  v1::JobSpec spec = BlobJob("blob-net", ds);
  spec.set_eval_every_steps(8);
  v1::Job job = StartJob(c, spec);
  EXPECT_EQ(job.total_steps(), 3 * 16);
  v1::StreamMetricsRequest sreq;
  sreq.set_job_id(job.job_id());
  grpc::Status st;
  std::vector<v1::MetricEvent> events = ReadStream(c, sreq, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  // Gap-free: sequences 0, 1, 2, ... and training steps 1..48 in order.
  int64_t train = 0, evals = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), int64_t(i));
    EXPECT_EQ(events[i].dropped_events(), 0);
    if (events[i].phase() == v1::PHASE_TRAIN) {
      EXPECT_EQ(events[i].step(), ++train);
      EXPECT_EQ(events[i].layers_size(), 2);  // Two dense layers.
      EXPECT_GT(events[i].layers(0).grad_weight_norm(), 0);
      EXPECT_GT(events[i].samples_per_sec(), 0);
      EXPECT_NEAR(events[i].learning_rate(), 0.1, 1e-7);
    } else if (events[i].phase() == v1::PHASE_EVAL) {
      ++evals;
    }
  }
  EXPECT_EQ(train, 48);
  EXPECT_EQ(evals, 6);  // Every 8 steps.
  EXPECT_EQ(events.back().phase(), v1::PHASE_STATE);
  EXPECT_EQ(events.back().job_state(), v1::JOB_STATE_COMPLETED);
  v1::Job done = WaitForJob(c, job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(done.step(), 48);
  EXPECT_GT(done.last_eval().accuracy(), 0.9);
  // Replay from step 40 with every_n = 4: steps 40, 44, 48 (+ evals/states).
  sreq.set_from_step(40);
  sreq.set_every_n(4);
  sreq.set_omit_layer_stats(true);
  std::vector<v1::MetricEvent> replay = ReadStream(c, sreq, &st);
  ASSERT_TRUE(st.ok());
  std::vector<int64_t> steps;
  for (const auto& e : replay) {
    if (e.phase() == v1::PHASE_TRAIN) {
      steps.push_back(e.step());
      EXPECT_EQ(e.layers_size(), 0);
    }
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{40, 44, 48}));
  // The trained model classifies the blob centres.
  v1::InferRequest ireq;
  ireq.set_model_id("blob-net");
  *ireq.mutable_inputs() = MakeTensor({2, 2}, {-1, -1, 1, 1});
  v1::InferResponse iresp;
  auto ctx = Ctx();
  ASSERT_TRUE(c.inference->Infer(ctx.get(), ireq, &iresp).ok());
  EXPECT_EQ(iresp.predictions(0), 0);
  EXPECT_EQ(iresp.predictions(1), 1);
  EXPECT_EQ(iresp.weights_step(), 48);
  {  // ListJobs filters by model.
    v1::ListJobsRequest lreq;
    lreq.set_model_id("blob-net");
    v1::ListJobsResponse lresp;
    auto lctx = Ctx();
    ASSERT_TRUE(c.training->ListJobs(lctx.get(), lreq, &lresp).ok());
    ASSERT_EQ(lresp.jobs_size(), 1);
    lreq.set_model_id("other");
    auto lctx2 = Ctx();
    ASSERT_TRUE(c.training->ListJobs(lctx2.get(), lreq, &lresp).ok());
    EXPECT_EQ(lresp.jobs_size(), 0);
  }
  {  // Deleting the uploaded set.
    v1::DeleteDatasetRequest dreq;
    dreq.set_dataset_id(ds);
    v1::DeleteDatasetResponse dresp;
    auto dctx = Ctx();
    EXPECT_TRUE(c.training->DeleteDataset(dctx.get(), dreq, &dresp).ok());
  }
}

TEST(ServiceTest, MnistJobRuns) {
  TestServer server;
  Client c = server.MakeClient();
  v1::ModelSpec spec;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      ReadText(
          absl::StrCat(NNLAB_SOURCE_DIR, "/examples/mnist_mlp_100.textproto")),
      &spec));
  CreateModel(c, spec, "mnist-mlp");
  v1::JobSpec js;
  js.set_model_id("mnist-mlp");
  js.set_dataset("mnist");
  js.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  js.set_batch_size(64);
  js.set_max_train_samples(2048);
  js.set_epochs(2);
  v1::Job job = StartJob(c, js);
  v1::Job done = WaitForJob(c, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.step(), 64);
  // 2,048 digits, two epochs of Adam: well above chance on the 2,000 test
  // digits.
  EXPECT_GT(done.last_eval().accuracy(), 0.8);
}

// Pauses job `id` once it has passed `step` (mid-run, mid-epoch) and
// waits until it is paused, with its checkpoint at the step it reached.
// REQUIRES: the job has far more steps than `step` (the pause must land
// while it runs).
v1::Job PauseAfter(Client& c, const std::string& id, int64_t step) {
  WaitForStep(c, id, step);
  Pause(c, id);
  v1::Job paused = WaitForJob(c, id);
  EXPECT_EQ(paused.state(), v1::JOB_STATE_PAUSED);
  EXPECT_EQ(paused.checkpoint_step(), paused.step());
  EXPECT_GT(paused.step(), 0);
  EXPECT_LT(paused.step(), paused.total_steps());
  return paused;
}

// The loss of every event of `phase` in job `id`'s history, by step.
std::map<int64_t, double> Losses(Client& c, const std::string& id,
                                 v1::Phase phase) {
  v1::StreamMetricsRequest req;
  req.set_job_id(id);
  grpc::Status st;
  std::map<int64_t, double> out;
  for (const auto& e : ReadStream(c, req, &st)) {
    if (e.phase() == phase) out[e.step()] = e.loss();
  }
  EXPECT_TRUE(st.ok()) << st.error_message();
  return out;
}

// Pausing and resuming from the checkpoint gives the loss curve of an
// uninterrupted run, step for step. Both runs are far longer than the test
// lets them go (it cancels them), so the pause always lands mid-run.
TEST(ServiceTest, PauseResumeContinuesTheSameRun) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 512, 0);  // 16 steps per epoch.
  CreateModel(c, MlpSpec(2, 16, 2, 3), "straight");
  CreateModel(c, MlpSpec(2, 16, 2, 3), "paused");
  v1::JobSpec spec = BlobJob("paused", ds);
  spec.set_epochs(10000);
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  spec.mutable_optimizer()->set_learning_rate(0.01f);
  spec.set_stats_every(-1);
  const v1::Job b = StartJob(c, spec);
  const v1::Job paused = PauseAfter(c, b.job_id(), 50);
  {  // A paused model cannot be claimed by another job.
    v1::JobSpec other = spec;
    v1::StartJobRequest req;
    *req.mutable_spec() = other;
    v1::Job resp;
    auto ctx = Ctx();
    EXPECT_EQ(c.training->StartJob(ctx.get(), req, &resp).error_code(),
              StatusCode::FAILED_PRECONDITION);
  }
  EXPECT_EQ(Resume(c, b.job_id()).resume_count(), 1);
  // On past the pause by more than two epochs, then stopped.
  WaitForStep(c, b.job_id(), paused.step() + 40);
  const int64_t end = Cancel(c, b.job_id()).step();
  const auto lb = Losses(c, b.job_id(), v1::PHASE_TRAIN);
  ASSERT_EQ(lb.size(), size_t(end));  // Steps 1..end, each once.
  ASSERT_EQ(lb.rbegin()->first, end);

  // The uninterrupted run, as far as the paused one went.
  spec.set_model_id("straight");
  const v1::Job a = StartJob(c, spec);
  WaitForStep(c, a.job_id(), end);
  Cancel(c, a.job_id());
  auto la = Losses(c, a.job_id(), v1::PHASE_TRAIN);
  ASSERT_GE(la.size(), size_t(end));
  la.erase(la.upper_bound(end), la.end());
  EXPECT_EQ(lb, la);
}

TEST(ServiceTest, CancelAndWrongStates) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 256, 0);
  CreateModel(c, MlpSpec(2, 8, 2), "long");
  v1::JobSpec spec = BlobJob("long", ds);
  spec.set_epochs(10000);
  v1::Job job = StartJob(c, spec);
  {
    v1::CancelJobRequest req;
    req.set_job_id(job.job_id());
    v1::Job resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->CancelJob(ctx.get(), req, &resp).ok());
  }
  v1::Job done = WaitForJob(c, job.job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(done.step(), done.total_steps());
  v1::Job resp;
  {
    v1::CancelJobRequest req;
    req.set_job_id(job.job_id());
    auto ctx = Ctx();
    EXPECT_EQ(c.training->CancelJob(ctx.get(), req, &resp).error_code(),
              StatusCode::FAILED_PRECONDITION);
  }
  {
    v1::PauseJobRequest req;
    req.set_job_id(job.job_id());
    auto ctx = Ctx();
    EXPECT_EQ(c.training->PauseJob(ctx.get(), req, &resp).error_code(),
              StatusCode::FAILED_PRECONDITION);
  }
  {
    v1::ResumeJobRequest req;
    req.set_job_id(job.job_id());
    auto ctx = Ctx();
    EXPECT_EQ(c.training->ResumeJob(ctx.get(), req, &resp).error_code(),
              StatusCode::FAILED_PRECONDITION);
  }
  // The model is free again.
  spec.set_epochs(1);
  v1::Job again = StartJob(c, spec);
  EXPECT_EQ(WaitForJob(c, again.job_id()).state(), v1::JOB_STATE_COMPLETED);
}

TEST(ServiceTest, QueueLimitIsResourceExhausted) {
  server::ServerOptions o;
  o.max_jobs = 1;
  o.max_queued_jobs = 1;
  TestServer server(o);
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 256, 0);
  std::vector<std::string> ids;
  for (const char* m : {"q1", "q2", "q3"}) {
    CreateModel(c, MlpSpec(2, 8, 2), m);
  }
  v1::JobSpec spec = BlobJob("q1", ds);
  spec.set_epochs(10000);
  v1::Job running = StartJob(c, spec);
  // Wait until it leaves the queue.
  ASSERT_EQ(WaitUntil(c, running.job_id(),
                      [](const v1::Job& j) {
                        return j.state() == v1::JOB_STATE_RUNNING;
                      })
                .state(),
            v1::JOB_STATE_RUNNING);
  spec.set_model_id("q2");
  v1::Job queued = StartJob(c, spec);
  EXPECT_EQ(queued.state(), v1::JOB_STATE_QUEUED);
  spec.set_model_id("q3");
  v1::StartJobRequest req;
  *req.mutable_spec() = spec;
  v1::Job resp;
  auto ctx = Ctx();
  EXPECT_EQ(c.training->StartJob(ctx.get(), req, &resp).error_code(),
            StatusCode::RESOURCE_EXHAUSTED);
  for (const auto& id : {queued.job_id(), running.job_id()}) {
    v1::CancelJobRequest cr;
    cr.set_job_id(id);
    auto cctx = Ctx();
    ASSERT_TRUE(c.training->CancelJob(cctx.get(), cr, &resp).ok());
    EXPECT_EQ(WaitForJob(c, id).state(), v1::JOB_STATE_CANCELLED);
  }
}

TEST(ServiceTest, ClientDrivenTraining) {
  TestServer server;
  Client c = server.MakeClient();
  CreateModel(c, MlpSpec(2, 8, 2), "client-net");
  Blobs b = MakeBlobs(64);
  auto request = [&](int step) {
    v1::TrainStepRequest req;
    if (step == 0) req.set_model_id("client-net");
    req.mutable_optimizer()->set_kind(v1::OPTIMIZER_MOMENTUM);
    req.mutable_optimizer()->set_learning_rate(0.05f);
    req.set_layer_stats(true);
    *req.mutable_inputs() = MakeTensor({64, 2}, b.x);
    *req.mutable_targets() = MakeTensor({64}, b.y);
    return req;
  };
  // Unary first.
  v1::TrainStepRequest first = request(0);
  v1::TrainStepResponse r1;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->TrainStep(ctx.get(), first, &r1).ok());
  }
  EXPECT_EQ(r1.metrics().step(), 1);
  EXPECT_EQ(r1.metrics().layers_size(), 2);
  // Then a stream of 30 steps on the same batch: the loss falls.
  auto ctx = Ctx();
  auto stream = c.training->TrainStream(ctx.get());
  std::vector<double> losses;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(stream->Write(request(i)));
    v1::TrainStepResponse resp;
    ASSERT_TRUE(stream->Read(&resp));
    EXPECT_EQ(resp.metrics().step(), i + 2);
    losses.push_back(resp.metrics().loss());
  }
  stream->WritesDone();
  ASSERT_TRUE(stream->Finish().ok());
  EXPECT_LT(losses.back(), 0.5 * r1.metrics().loss());
  v1::GetModelRequest g;
  g.set_model_id("client-net");
  v1::Model m;
  auto gctx = Ctx();
  ASSERT_TRUE(c.models->GetModel(gctx.get(), g, &m).ok());
  EXPECT_EQ(m.trained_steps(), 31);
}

TEST(ServiceTest, SampleFromGanAndSequenceModels) {
  TestServer server;
  Client c = server.MakeClient();
  v1::CreateModelRequest req;
  req.set_model_id("gan");
  v1::GanSpec* gan = req.mutable_gan();
  gan->set_noise_dim(4);
  gan->mutable_generator()->add_layers()->mutable_dense()->set_units(8);
  gan->mutable_generator()->add_layers()->mutable_tanh();
  gan->mutable_generator()->add_layers()->mutable_dense()->set_units(3);
  gan->mutable_discriminator()->add_layers()->mutable_dense()->set_units(8);
  gan->mutable_discriminator()->add_layers()->mutable_relu();
  gan->mutable_discriminator()->add_layers()->mutable_dense()->set_units(1);
  v1::Model m;
  {
    auto ctx = Ctx();
    grpc::Status s = c.models->CreateModel(ctx.get(), req, &m);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(m.parameter_count(), (4 * 8 + 8 + 8 * 3 + 3) + (3 * 8 + 8 + 8 + 1));
  v1::SampleRequest sreq;
  sreq.set_model_id("gan");
  sreq.set_count(5);
  sreq.set_seed(9);
  v1::SampleResponse s1, s2;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.inference->Sample(ctx.get(), sreq, &s1).ok());
    auto ctx2 = Ctx();
    ASSERT_TRUE(c.inference->Sample(ctx2.get(), sreq, &s2).ok());
  }
  ASSERT_EQ(s1.samples().shape_size(), 2);
  EXPECT_EQ(s1.samples().shape(0), 5);
  EXPECT_EQ(s1.samples().shape(1), 3);
  EXPECT_EQ(std::vector<float>(s1.samples().data().begin(),
                               s1.samples().data().end()),
            std::vector<float>(s2.samples().data().begin(),
                               s2.samples().data().end()));
  // The discriminator scores samples: one logit each.
  v1::InferRequest ireq;
  ireq.set_model_id("gan");
  *ireq.mutable_inputs() = s1.samples();
  v1::InferResponse iresp;
  auto ictx = Ctx();
  ASSERT_TRUE(c.inference->Infer(ictx.get(), ireq, &iresp).ok());
  EXPECT_EQ(iresp.outputs().data_size(), 5);

  // A many-to-many character model generates one token per step.
  v1::ModelSpec seq;
  seq.add_input_shape(6);
  seq.add_input_shape(5);
  v1::Recurrent* rnn = seq.add_layers()->mutable_rnn();
  rnn->set_units(12);
  rnn->set_return_sequences(true);
  seq.add_layers()->mutable_time_dense()->set_units(5);
  seq.set_loss(v1::LOSS_MSE);
  CreateModel(c, seq, "seq");
  v1::SampleRequest q;
  q.set_model_id("seq");
  q.set_count(2);
  q.set_steps(7);
  *q.mutable_prime() = MakeTensor({5}, {1, 0, 0, 0, 0});
  v1::SampleResponse qr;
  auto qctx = Ctx();
  grpc::Status qs = c.inference->Sample(qctx.get(), q, &qr);
  ASSERT_TRUE(qs.ok()) << qs.error_message();
  EXPECT_EQ(qr.tokens_size(), 14);
  ASSERT_EQ(qr.samples().shape_size(), 3);
  EXPECT_EQ(qr.samples().shape(1), 7);
  for (int i = 0; i < 14; ++i) {
    // Each generated step is the one-hot row of its token.
    EXPECT_EQ(qr.samples().data(i * 5 + qr.tokens(i)), 1.0f);
  }
}

// A GAN job on uploaded 1-D data: alternating D and G events, and the
// generator's samples move towards the data.
// Uploads `n` samples of N(3, 0.5) in 1-D, with a dummy class label.
std::string UploadNormal1D(Client& c, int n) {
  std::mt19937 gen(5);
  std::normal_distribution<float> data(3.0f, 0.5f);
  std::string payload;
  for (int i = 0; i < n; ++i) {
    const float x = data(gen);
    payload.append(reinterpret_cast<const char*>(&x), 4);
  }
  payload.append(std::string(4 * n, '\0'));  // Labels: class 0.
  v1::DatasetInfo info;
  auto ctx = Ctx();
  auto w = c.training->UploadDataset(ctx.get(), &info);
  v1::UploadDatasetRequest h;
  h.mutable_header()->add_sample_shape(1);
  h.mutable_header()->set_num_classes(1);
  h.mutable_header()->set_num_samples(n);
  h.mutable_header()->set_crc32c(server::Crc32c(payload));
  EXPECT_TRUE(w->Write(h));
  v1::UploadDatasetRequest chunk;
  chunk.set_chunk(payload);
  EXPECT_TRUE(w->Write(chunk));
  w->WritesDone();
  EXPECT_TRUE(w->Finish().ok());
  return info.dataset_id();
}

// A GAN for 1-D data from 4-D normal noise; `dropout` puts a dropout layer
// in the discriminator.
void CreateGan1D(Client& c, const std::string& id, bool dropout = false) {
  v1::CreateModelRequest req;
  req.set_model_id(id);
  v1::GanSpec* gan = req.mutable_gan();
  gan->set_noise_dim(4);
  gan->set_noise(v1::NOISE_NORMAL);
  gan->set_seed(3);
  gan->mutable_generator()->add_layers()->mutable_dense()->set_units(16);
  gan->mutable_generator()->add_layers()->mutable_tanh();
  gan->mutable_generator()->add_layers()->mutable_dense()->set_units(1);
  gan->mutable_discriminator()->add_layers()->mutable_dense()->set_units(16);
  gan->mutable_discriminator()->add_layers()->mutable_tanh();
  if (dropout) gan->mutable_discriminator()->add_layers()->mutable_dropout();
  gan->mutable_discriminator()->add_layers()->mutable_dense()->set_units(1);
  v1::Model m;
  auto ctx = Ctx();
  ASSERT_TRUE(c.models->CreateModel(ctx.get(), req, &m).ok());
}

v1::JobSpec GanJob(const std::string& model, const std::string& dataset,
                   int epochs) {
  v1::JobSpec spec;
  spec.set_model_id(model);
  spec.set_dataset(dataset);
  spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  spec.mutable_optimizer()->set_learning_rate(0.005f);
  spec.set_batch_size(64);
  spec.set_epochs(epochs);
  return spec;
}

TEST(ServiceTest, GanJobTrainsTheGenerator) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadNormal1D(c, 2000);
  CreateGan1D(c, "gan1d");
  auto sample_mean = [&]() {
    v1::SampleRequest s;
    s.set_model_id("gan1d");
    s.set_count(500);
    s.set_seed(1);
    v1::SampleResponse r;
    auto ctx = Ctx();
    EXPECT_TRUE(c.inference->Sample(ctx.get(), s, &r).ok());
    double sum = 0;
    for (float v : r.samples().data()) sum += v;
    return sum / r.samples().data_size();
  };
  const double before = sample_mean();
  // 32 steps per epoch: 640 generator steps.
  v1::Job job = StartJob(c, GanJob("gan1d", ds, 20));
  v1::Job done = WaitForJob(c, job.job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  EXPECT_EQ(done.step(), 640);
  v1::StreamMetricsRequest sreq;
  sreq.set_job_id(job.job_id());
  grpc::Status st;
  int64_t d_events = 0, g_events = 0;
  v1::Phase last = v1::PHASE_UNSPECIFIED;
  for (const auto& e : ReadStream(c, sreq, &st)) {
    if (e.phase() == v1::PHASE_GAN_D) {
      ++d_events;
      EXPECT_NE(last, v1::PHASE_GAN_D);
      EXPECT_GT(e.d_real(), 0);
      EXPECT_LT(e.d_real(), 1);
      EXPECT_GT(e.d_fake(), 0);
      EXPECT_LT(e.d_fake(), 1);
    } else if (e.phase() == v1::PHASE_GAN_G) {
      ++g_events;
      EXPECT_EQ(last, v1::PHASE_GAN_D);
    }
    last = e.phase();
  }
  EXPECT_EQ(d_events, 640);
  EXPECT_EQ(g_events, 640);
  const double after = sample_mean();
  std::printf("GAN generator mean: %.3f before, %.3f after (data mean 3)\n",
              before, after);
  EXPECT_LT(std::fabs(after - 3.0), 0.5 * std::fabs(before - 3.0));
}

// A GAN paused mid-run resumes from its checkpoint with the same noise,
// real batches and dropout masks: every loss equals an uninterrupted run's.
TEST(ServiceTest, GanPauseResumeContinuesTheSameRun) {
  TestServer server;
  Client c = server.MakeClient();
  const std::string ds = UploadNormal1D(c, 2000);  // 32 steps per epoch.
  CreateGan1D(c, "straight", /*dropout=*/true);
  CreateGan1D(c, "paused", /*dropout=*/true);
  // Far longer than the test lets either run go: it cancels them.
  const v1::Job b = StartJob(c, GanJob("paused", ds, 10000));
  const v1::Job paused = PauseAfter(c, b.job_id(), 40);
  EXPECT_EQ(Resume(c, b.job_id()).resume_count(), 1);
  WaitForStep(c, b.job_id(), paused.step() + 80);
  const int64_t end = Cancel(c, b.job_id()).step();
  const v1::Job a = StartJob(c, GanJob("straight", ds, 10000));
  WaitForStep(c, a.job_id(), end);
  Cancel(c, a.job_id());
  for (v1::Phase phase : {v1::PHASE_GAN_D, v1::PHASE_GAN_G}) {
    SCOPED_TRACE(v1::Phase_Name(phase));
    const auto lb = Losses(c, b.job_id(), phase);
    ASSERT_EQ(lb.size(), size_t(end));  // Steps 1..end, each once.
    ASSERT_EQ(lb.rbegin()->first, end);
    auto la = Losses(c, a.job_id(), phase);
    ASSERT_GE(la.size(), size_t(end));
    la.erase(la.upper_bound(end), la.end());
    EXPECT_EQ(lb, la);
  }
}

// >= 25 bad requests, each with its status code; the server keeps serving.
TEST(ServiceTest, BadRequestsGetTheRightCodes) {
  server::ServerOptions o;
  o.max_message_bytes = 1 << 20;
  o.max_upload_bytes = 1 << 16;
  o.limits.max_params = 1'000'000;
  TestServer server(o);
  Client c = server.MakeClient();
  const std::string ds = UploadBlobs(c, 64, 16);
  CreateModel(c, MlpSpec(2, 8, 2), "ok");
  v1::JobSpec good = BlobJob("ok", ds);
  good.set_epochs(1);
  v1::Job finished = StartJob(c, good);
  ASSERT_EQ(WaitForJob(c, finished.job_id()).state(), v1::JOB_STATE_COMPLETED);

  auto create = [&](std::function<void(v1::CreateModelRequest*)> edit) {
    return [edit, &c]() {
      v1::CreateModelRequest req;
      *req.mutable_spec() = MlpSpec(2, 8, 2);
      edit(&req);
      v1::Model m;
      auto ctx = Ctx();
      return c.models->CreateModel(ctx.get(), req, &m);
    };
  };
  auto start = [&](std::function<void(v1::JobSpec*)> edit) {
    return [edit, &c, good]() {
      v1::StartJobRequest req;
      *req.mutable_spec() = good;
      edit(req.mutable_spec());
      v1::Job j;
      auto ctx = Ctx();
      return c.training->StartJob(ctx.get(), req, &j);
    };
  };
  auto infer = [&](std::function<void(v1::InferRequest*)> edit) {
    return [edit, &c]() {
      v1::InferRequest req;
      req.set_model_id("ok");
      *req.mutable_inputs() = MakeTensor({1, 2}, {0.5f, 0.5f});
      edit(&req);
      v1::InferResponse r;
      auto ctx = Ctx();
      return c.inference->Infer(ctx.get(), req, &r);
    };
  };
  auto step = [&](std::function<void(v1::TrainStepRequest*)> edit) {
    return [edit, &c]() {
      v1::TrainStepRequest req;
      req.set_model_id("ok");
      *req.mutable_inputs() = MakeTensor({2, 2}, {0, 1, 1, 0});
      *req.mutable_targets() = MakeTensor({2}, {0, 1});
      edit(&req);
      v1::TrainStepResponse r;
      auto ctx = Ctx();
      return c.training->TrainStep(ctx.get(), req, &r);
    };
  };
  auto upload =
      [&](std::function<void(v1::DatasetHeader*, std::string*)> edit) {
        return [edit, &c]() {
          std::string payload(4 * 3 * 4, '\0');  // 4 samples of [2] + labels.
          v1::UploadDatasetRequest h;
          v1::DatasetHeader* hd = h.mutable_header();
          hd->add_sample_shape(2);
          hd->set_num_classes(2);
          hd->set_num_samples(4);
          hd->set_crc32c(server::Crc32c(payload));
          edit(hd, &payload);
          v1::DatasetInfo info;
          auto ctx = Ctx();
          auto w = c.training->UploadDataset(ctx.get(), &info);
          w->Write(h);
          v1::UploadDatasetRequest chunk;
          chunk.set_chunk(payload);
          w->Write(chunk);
          w->WritesDone();
          return w->Finish();
        };
      };
  const float kNaN = std::nanf("");
  struct Case {
    std::string name;
    std::function<grpc::Status()> call;
    StatusCode code;
  };
  std::vector<Case> cases = {
      {"no definition", create([](auto* r) { r->clear_spec(); }),
       StatusCode::INVALID_ARGUMENT},
      {"empty input_shape",
       create([](auto* r) { r->mutable_spec()->clear_input_shape(); }),
       StatusCode::INVALID_ARGUMENT},
      {"no layers", create([](auto* r) { r->mutable_spec()->clear_layers(); }),
       StatusCode::INVALID_ARGUMENT},
      {"dense units 0", create([](auto* r) {
         r->mutable_spec()->mutable_layers(0)->mutable_dense()->set_units(0);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"dense units negative", create([](auto* r) {
         r->mutable_spec()->mutable_layers(0)->mutable_dense()->set_units(-5);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"layer without kind",
       create([](auto* r) { r->mutable_spec()->add_layers()->set_name("x"); }),
       StatusCode::INVALID_ARGUMENT},
      {"dropout keep_prob > 1", create([](auto* r) {
         r->mutable_spec()->add_layers()->mutable_dropout()->set_keep_prob(
             1.5f);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"dropout keep_prob NaN", create([kNaN](auto* r) {
         r->mutable_spec()->add_layers()->mutable_dropout()->set_keep_prob(
             kNaN);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"leaky_relu alpha negative", create([](auto* r) {
         r->mutable_spec()->add_layers()->mutable_leaky_relu()->set_alpha(-1);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"conv2d on a flat input", create([](auto* r) {
         auto* l = r->mutable_spec()->mutable_layers()->Add();
         l->mutable_conv2d()->set_filters(4);
         r->mutable_spec()->mutable_layers()->SwapElements(0, 3);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"huge input dimension", create([](auto* r) {
         r->mutable_spec()->set_input_shape(0, int64_t{1} << 40);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"too many parameters", create([](auto* r) {
         r->mutable_spec()->set_input_shape(0, 1 << 20);
         r->mutable_spec()->mutable_layers(0)->mutable_dense()->set_units(
             1 << 20);
       }),
       StatusCode::RESOURCE_EXHAUSTED},
      {"path traversal id",
       create([](auto* r) { r->set_model_id("../../etc"); }),
       StatusCode::INVALID_ARGUMENT},
      {"duplicate id", create([](auto* r) { r->set_model_id("ok"); }),
       StatusCode::ALREADY_EXISTS},
      {"unknown loss", create([](auto* r) {
         r->mutable_spec()->set_loss(static_cast<v1::LossKind>(42));
       }),
       StatusCode::INVALID_ARGUMENT},
      {"GetModel unknown",
       [&]() {
         v1::GetModelRequest r;
         r.set_model_id("nope");
         v1::Model m;
         auto ctx = Ctx();
         return c.models->GetModel(ctx.get(), r, &m);
       },
       StatusCode::NOT_FOUND},
      {"GetModel empty id",
       [&]() {
         v1::GetModelRequest r;
         v1::Model m;
         auto ctx = Ctx();
         return c.models->GetModel(ctx.get(), r, &m);
       },
       StatusCode::INVALID_ARGUMENT},
      {"DeleteModel unknown",
       [&]() {
         v1::DeleteModelRequest r;
         r.set_model_id("nope");
         v1::DeleteModelResponse m;
         auto ctx = Ctx();
         return c.models->DeleteModel(ctx.get(), r, &m);
       },
       StatusCode::NOT_FOUND},
      {"ImportModel wrong weight shape",
       [&]() {
         v1::ExportModelRequest e;
         e.set_model_id("ok");
         v1::ExportModelResponse er;
         auto ctx = Ctx();
         EXPECT_TRUE(c.models->ExportModel(ctx.get(), e, &er).ok());
         v1::ImportModelRequest r;
         *r.mutable_file() = er.file();
         r.mutable_file()->mutable_params(0)->mutable_tensor()->set_shape(0, 7);
         v1::Model m;
         auto ctx2 = Ctx();
         return c.models->ImportModel(ctx2.get(), r, &m);
       },
       StatusCode::INVALID_ARGUMENT},
      {"ListModels negative page",
       [&]() {
         v1::ListModelsRequest r;
         r.set_page_size(-1);
         v1::ListModelsResponse m;
         auto ctx = Ctx();
         return c.models->ListModels(ctx.get(), r, &m);
       },
       StatusCode::INVALID_ARGUMENT},
      {"StartJob unknown model",
       start([](auto* s) { s->set_model_id("nope"); }), StatusCode::NOT_FOUND},
      {"StartJob unknown dataset",
       start([](auto* s) { s->set_dataset("ds-none"); }),
       StatusCode::NOT_FOUND},
      {"StartJob traversal dataset",
       start([](auto* s) { s->set_dataset("../x"); }),
       StatusCode::INVALID_ARGUMENT},
      {"StartJob NaN learning rate", start([kNaN](auto* s) {
         s->mutable_optimizer()->set_learning_rate(kNaN);
       }),
       StatusCode::INVALID_ARGUMENT},
      {"StartJob momentum 1.5",
       start([](auto* s) { s->mutable_optimizer()->set_momentum(1.5f); }),
       StatusCode::INVALID_ARGUMENT},
      {"StartJob unknown optimizer", start([](auto* s) {
         s->mutable_optimizer()->set_kind(static_cast<v1::OptimizerKind>(99));
       }),
       StatusCode::INVALID_ARGUMENT},
      {"StartJob batch_size negative",
       start([](auto* s) { s->set_batch_size(-1); }),
       StatusCode::INVALID_ARGUMENT},
      {"StartJob sample_shape mismatch",
       start([](auto* s) { s->add_sample_shape(3); }),
       StatusCode::INVALID_ARGUMENT},
      {"StartJob on a mnist-shaped model", start([&](auto* s) {
         CreateModel(c, MlpSpec(784, 4, 10), "wide");
         s->set_model_id("wide");
       }),
       StatusCode::INVALID_ARGUMENT},
      {"GetJob unknown",
       [&]() {
         v1::GetJobRequest r;
         r.set_job_id("j-none");
         v1::Job j;
         auto ctx = Ctx();
         return c.training->GetJob(ctx.get(), r, &j);
       },
       StatusCode::NOT_FOUND},
      {"CancelJob unknown",
       [&]() {
         v1::CancelJobRequest r;
         r.set_job_id("j-none");
         v1::Job j;
         auto ctx = Ctx();
         return c.training->CancelJob(ctx.get(), r, &j);
       },
       StatusCode::NOT_FOUND},
      {"ResumeJob completed",
       [&]() {
         v1::ResumeJobRequest r;
         r.set_job_id(finished.job_id());
         v1::Job j;
         auto ctx = Ctx();
         return c.training->ResumeJob(ctx.get(), r, &j);
       },
       StatusCode::FAILED_PRECONDITION},
      {"StreamMetrics unknown job",
       [&]() {
         v1::StreamMetricsRequest r;
         r.set_job_id("j-none");
         grpc::Status st;
         ReadStream(c, r, &st);
         return st;
       },
       StatusCode::NOT_FOUND},
      {"Infer shape mismatch", infer([](auto* r) {
         *r->mutable_inputs() = MakeTensor({1, 3}, {1, 2, 3});
       }),
       StatusCode::INVALID_ARGUMENT},
      {"Infer data size mismatch", infer([](auto* r) {
         *r->mutable_inputs() = MakeTensor({2, 2}, {1, 2, 3});
       }),
       StatusCode::INVALID_ARGUMENT},
      {"Infer NaN input",
       infer([kNaN](auto* r) { r->mutable_inputs()->set_data(0, kNaN); }),
       StatusCode::INVALID_ARGUMENT},
      {"Infer data and raw_data", infer([](auto* r) {
         r->mutable_inputs()->set_raw_data(std::string(8, '\0'));
       }),
       StatusCode::INVALID_ARGUMENT},
      {"Infer raw_data wrong size", infer([](auto* r) {
         r->mutable_inputs()->clear_data();
         r->mutable_inputs()->set_raw_data(std::string(7, '\0'));
       }),
       StatusCode::INVALID_ARGUMENT},
      {"Infer negative top_k", infer([](auto* r) { r->set_top_k(-1); }),
       StatusCode::INVALID_ARGUMENT},
      {"Infer oversize message", infer([](auto* r) {
         std::vector<float> big(2 * 200000, 0.5f);
         *r->mutable_inputs() = MakeTensor({200000, 2}, big);
       }),
       StatusCode::RESOURCE_EXHAUSTED},
      {"TrainStep class out of range", step([](auto* r) {
         *r->mutable_targets() = MakeTensor({2}, {0, 5});
       }),
       StatusCode::INVALID_ARGUMENT},
      {"TrainStep batch mismatch", step([](auto* r) {
         *r->mutable_targets() = MakeTensor({3}, {0, 1, 1});
       }),
       StatusCode::INVALID_ARGUMENT},
      {"TrainStep NaN clip_norm",
       step([kNaN](auto* r) { r->mutable_optimizer()->set_clip_norm(kNaN); }),
       StatusCode::INVALID_ARGUMENT},
      {"Upload bad checksum",
       upload([](auto* h, std::string* p) { h->set_crc32c(h->crc32c() ^ 1); }),
       StatusCode::DATA_LOSS},
      {"Upload zero samples",
       upload([](auto* h, std::string*) { h->set_num_samples(0); }),
       StatusCode::INVALID_ARGUMENT},
      {"Upload over the size limit",
       upload([](auto* h, std::string*) { h->set_num_samples(100000); }),
       StatusCode::RESOURCE_EXHAUSTED},
      {"Upload short payload", upload([](auto* h, std::string* p) {
         p->resize(p->size() - 4);
         h->set_crc32c(server::Crc32c(*p));
       }),
       StatusCode::INVALID_ARGUMENT},
      {"DeleteDataset builtin",
       [&]() {
         v1::DeleteDatasetRequest r;
         r.set_dataset_id("mnist");
         v1::DeleteDatasetResponse d;
         auto ctx = Ctx();
         return c.training->DeleteDataset(ctx.get(), r, &d);
       },
       StatusCode::INVALID_ARGUMENT},
      {"Sample count 0",
       [&]() {
         v1::SampleRequest r;
         r.set_model_id("ok");
         v1::SampleResponse s;
         auto ctx = Ctx();
         return c.inference->Sample(ctx.get(), r, &s);
       },
       StatusCode::INVALID_ARGUMENT},
  };
  ASSERT_GE(cases.size(), 25u);
  for (const Case& tc : cases) {
    grpc::Status s = tc.call();
    EXPECT_EQ(s.error_code(), tc.code) << tc.name << ": " << s.error_message();
    EXPECT_FALSE(s.error_message().empty()) << tc.name;
    // Still serving.
    v1::ListModelsRequest r;
    v1::ListModelsResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(c.models->ListModels(ctx.get(), r, &resp).ok()) << tc.name;
  }
}

TEST(ServiceTest, ErrorsNameTheField) {
  TestServer server;
  Client c = server.MakeClient();
  v1::CreateModelRequest req;
  *req.mutable_spec() = MlpSpec(2, 8, 2);
  req.mutable_spec()->mutable_layers(2)->mutable_dense()->set_units(-3);
  v1::Model m;
  auto ctx = Ctx();
  grpc::Status s = c.models->CreateModel(ctx.get(), req, &m);
  EXPECT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("layers[2].dense.units"), std::string::npos)
      << s.error_message();
}

TEST(ServiceTest, TokenAuthentication) {
  server::ServerOptions o;
  o.token = "s3cret-token";
  TestServer server(o);
  Client c = server.MakeClient();
  v1::ListModelsRequest req;
  v1::ListModelsResponse resp;
  {
    auto ctx = Ctx();
    EXPECT_EQ(c.models->ListModels(ctx.get(), req, &resp).error_code(),
              StatusCode::UNAUTHENTICATED);
  }
  {
    auto ctx = Ctx(10, "wrong");
    EXPECT_EQ(c.models->ListModels(ctx.get(), req, &resp).error_code(),
              StatusCode::UNAUTHENTICATED);
  }
  {
    auto ctx = Ctx(10, "s3cret-token");
    EXPECT_TRUE(c.models->ListModels(ctx.get(), req, &resp).ok());
  }
  {
    v1::StreamMetricsRequest s;
    s.set_job_id("j-x");
    grpc::Status st;
    ReadStream(c, s, &st);
    EXPECT_EQ(st.error_code(), StatusCode::UNAUTHENTICATED);
  }
  // Health needs no token.
  EXPECT_EQ(HealthCheck(server.Channel()), 1);
}

TEST(ServiceTest, TlsAndMutualTls) {
  TempDir dir;
  const std::string d = dir.path();
  // A CA, a server certificate for 127.0.0.1 and a client certificate.
  MakeCa(d, "ca");
  MakeCert(d, "ca", "server");
  MakeCert(d, "ca", "client");
  const std::string ca = ReadText(d + "/ca.pem");
  for (bool mutual : {false, true}) {
    server::ServerOptions o;
    o.tls_cert_pem = ReadText(d + "/server.pem");
    o.tls_key_pem = ReadText(d + "/server.key");
    if (mutual) o.tls_client_ca_pem = ca;
    TestServer server(o);
    const std::string addr = server.address();
    auto call = [&](std::shared_ptr<grpc::ChannelCredentials> creds) {
      auto ch = grpc::CreateChannel(addr, creds);
      Client c(ch);
      v1::ListModelsRequest req;
      v1::ListModelsResponse resp;
      auto ctx = Ctx(5);
      return c.models->ListModels(ctx.get(), req, &resp).error_code();
    };
    grpc::SslCredentialsOptions plain_tls;
    plain_tls.pem_root_certs = ca;
    grpc::SslCredentialsOptions with_cert = plain_tls;
    with_cert.pem_private_key = ReadText(d + "/client.key");
    with_cert.pem_cert_chain = ReadText(d + "/client.pem");
    EXPECT_EQ(call(grpc::SslCredentials(with_cert)), StatusCode::OK) << mutual;
    EXPECT_EQ(call(grpc::SslCredentials(plain_tls)),
              mutual ? StatusCode::UNAVAILABLE : StatusCode::OK);
    EXPECT_EQ(call(grpc::InsecureChannelCredentials()),
              StatusCode::UNAVAILABLE);
  }
}

TEST(ServiceTest, ShutdownEndsStreamsAndCheckpointsJobs) {
  TempDir dir;
  std::string job_id;
  {
    TestServer server({}, dir.path());
    Client c = server.MakeClient();
    EXPECT_EQ(HealthCheck(server.Channel()), 1);
    const std::string ds = UploadBlobs(c, 256, 0);
    CreateModel(c, MlpSpec(2, 8, 2), "m");
    v1::JobSpec spec = BlobJob("m", ds);
    spec.set_epochs(10000);
    job_id = StartJob(c, spec).job_id();
    v1::StreamMetricsRequest sreq;
    sreq.set_job_id(job_id);
    grpc::Status st;
    std::thread watcher([&] { ReadStream(c, sreq, &st); });
    // Shut down while the job trains (it has steps to checkpoint) and the
    // stream is open.
    WaitForStep(c, job_id, 1);
    for (int i = 0; i < 1000 && server.server()->open_metric_streams() < 1;
         ++i) {
      usleep(5000);
    }
    EXPECT_EQ(server.server()->open_metric_streams(), 1);
    const absl::Time t0 = absl::Now();
    server.server()->Shutdown(absl::Seconds(5));
    EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
    watcher.join();
    EXPECT_EQ(st.error_code(), StatusCode::UNAVAILABLE) << st.error_message();
  }
  // The next start resumes the job from its checkpoint.
  TestServer again({}, dir.path());
  Client c = again.MakeClient();
  v1::GetJobRequest g;
  g.set_job_id(job_id);
  v1::Job job;
  auto ctx = Ctx();
  ASSERT_TRUE(c.training->GetJob(ctx.get(), g, &job).ok());
  EXPECT_GT(job.checkpoint_step(), 0);
  EXPECT_EQ(job.resume_count(), 1);
  EXPECT_TRUE(job.state() == v1::JOB_STATE_QUEUED ||
              job.state() == v1::JOB_STATE_RUNNING);
  if (job.state() == v1::JOB_STATE_QUEUED) {
    EXPECT_NE(job.failure_reason().find("interrupted by server shutdown"),
              std::string::npos)
        << job.failure_reason();
  }
  // Running again, the interruption is history.
  job = WaitUntil(c, job_id, [](const v1::Job& j) {
    return j.state() == v1::JOB_STATE_RUNNING;
  });
  EXPECT_EQ(job.failure_reason(), "");
  v1::CancelJobRequest cr;
  cr.set_job_id(job_id);
  auto cctx = Ctx();
  ASSERT_TRUE(c.training->CancelJob(cctx.get(), cr, &job).ok());
  EXPECT_EQ(WaitForJob(c, job_id).state(), v1::JOB_STATE_CANCELLED);
}

// DatasetService serves the data sets; TrainingService's deprecated
// methods of the same names serve the same data until they go away.
TEST(ServiceTest, DatasetServiceAndItsDeprecatedCopiesAgree) {
  TestServer server;
  Client c = server.MakeClient();
  auto datasets = v1::DatasetService::NewStub(server.Channel());
  // Upload through the new service.
  Blobs b = MakeBlobs(40);
  std::string payload(reinterpret_cast<const char*>(b.x.data()),
                      b.x.size() * 4);
  payload.append(reinterpret_cast<const char*>(b.y.data()), b.y.size() * 4);
  v1::DatasetInfo fresh;
  {
    auto ctx = Ctx();
    auto writer = datasets->UploadDataset(ctx.get(), &fresh);
    v1::UploadDatasetRequest req;
    v1::DatasetHeader* h = req.mutable_header();
    h->set_name("new-blobs");
    h->add_sample_shape(2);
    h->set_num_classes(2);
    h->set_num_samples(40);
    h->set_test_samples(8);
    h->set_crc32c(server::Crc32c(payload));
    ASSERT_TRUE(writer->Write(req));
    v1::UploadDatasetRequest part;
    part.set_chunk(payload);
    ASSERT_TRUE(writer->Write(part));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(fresh.train_samples(), 32);
  EXPECT_EQ(fresh.test_samples(), 8);
  // And one through the old.
  const std::string old_id = UploadBlobs(c, 64, 16);
  auto list = [&](bool deprecated) {
    v1::ListDatasetsResponse resp;
    auto ctx = Ctx();
    grpc::Status s = deprecated
                         ? c.training->ListDatasets(
                               ctx.get(), v1::ListDatasetsRequest(), &resp)
                         : datasets->ListDatasets(
                               ctx.get(), v1::ListDatasetsRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> ids;
    for (const auto& d : resp.datasets())
      if (!d.builtin()) ids.push_back(d.dataset_id());
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  std::vector<std::string> both = {fresh.dataset_id(), old_id};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(list(false), both);
  EXPECT_EQ(list(true), both);
  // Deleted through one, gone from both; the other service says NOT_FOUND.
  v1::DeleteDatasetRequest del;
  del.set_dataset_id(fresh.dataset_id());
  v1::DeleteDatasetResponse dresp;
  {
    auto ctx = Ctx();
    ASSERT_TRUE(c.training->DeleteDataset(ctx.get(), del, &dresp).ok());
  }
  {
    auto ctx = Ctx();
    EXPECT_EQ(datasets->DeleteDataset(ctx.get(), del, &dresp).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  del.set_dataset_id(old_id);
  {
    auto ctx = Ctx();
    ASSERT_TRUE(datasets->DeleteDataset(ctx.get(), del, &dresp).ok());
  }
  EXPECT_TRUE(list(false).empty());
  EXPECT_TRUE(list(true).empty());
}

}  // namespace
}  // namespace nnlab::testing

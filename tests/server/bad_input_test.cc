// The bad-input matrix: every RPC of ModelService, TrainingService,
// InferenceService and DatasetService against missing fields, wrong shapes,
// NaN/Inf values, negative and huge dimensions, specs too large for memory,
// tensors whose shape disagrees with their data, oversized uploads, path-like
// ids and unknown enum values. Each row names the exact status code; after
// every row the server must still report SERVING and answer a valid Infer with
// exactly the outputs it gave before (no bad call may change a model).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "nnlab/v1/dataset.pb.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

using ::grpc::StatusCode;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

v1::Tensor Packed(std::vector<int64_t> shape, std::vector<float> data) {
  v1::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  for (float f : data) t.add_data(f);
  return t;
}

v1::Tensor Raw(std::vector<int64_t> shape, std::vector<float> data,
               int extra_bytes = 0) {
  v1::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  std::string bytes(reinterpret_cast<const char*>(data.data()),
                    data.size() * 4);
  if (extra_bytes < 0) bytes.resize(bytes.size() + extra_bytes);
  if (extra_bytes > 0) bytes.append(size_t(extra_bytes), '\0');
  t.set_raw_data(bytes);
  return t;
}

// `bytes` as uint8_data over `divisor`; with `raw` or `packed`, zeros for
// every element in that field as well.
v1::Tensor Bytes(std::vector<int64_t> shape, std::string bytes, float divisor,
                 bool raw = false, bool packed = false) {
  v1::Tensor t;
  int64_t n = 1;
  for (int64_t d : shape) {
    t.add_shape(d);
    n *= d;
  }
  t.set_uint8_data(bytes);
  t.set_uint8_divisor(divisor);
  if (raw) t.set_raw_data(std::string(size_t(n) * 4, '\0'));
  for (int64_t i = 0; packed && i < n; ++i) t.add_data(0.0f);
  return t;
}

const std::string kLongId(300, 'a');
// Ids that must never reach a file name: each is INVALID_ARGUMENT.
const std::vector<std::pair<std::string, std::string>> kBadIds = {
    {"empty", ""},
    {"../x", "../x"},
    {"a/b", "a/b"},
    {"300 chars", kLongId},
    {"dot-dot", ".."},
    {"NUL inside", std::string("a\0b", 3)},
    {"absolute", "/etc/passwd"},
};

struct Case {
  std::string name;
  std::function<grpc::Status()> call;
  StatusCode code;
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::ServerOptions o;
    o.max_message_bytes = 8 << 20;
    o.max_upload_bytes = 1 << 20;
    // Small enough that the memory rows stay cheap, large enough for the
    // probe models.
    o.limits.max_params = 2'000'000;
    o.limits.max_tensor_elements = int64_t{1} << 24;
    server_ = std::make_unique<TestServer>(o);
    c_ = std::make_unique<Client>(server_->MakeClient());
    dataset_ = UploadBlobs(*c_, 64, 16);
    CreateModel(*c_, MlpSpec(2, 8, 2), "ok");
    // TrainStream rows take one good step first, on their own model.
    CreateModel(*c_, MlpSpec(2, 8, 2), "stream");
    // A recurrent model for Sample's sequence rows: [T=3, 4] -> [3, 4].
    v1::ModelSpec seq;
    seq.add_input_shape(3);
    seq.add_input_shape(4);
    seq.add_layers()->mutable_rnn()->set_units(6);
    seq.mutable_layers(0)->mutable_rnn()->set_return_sequences(true);
    seq.add_layers()->mutable_time_dense()->set_units(4);
    seq.set_loss(v1::LOSS_MSE);
    CreateModel(*c_, seq, "seq");
    // One-step sequences with very wide steps: fine per sample, far too
    // large for count * steps * features.
    v1::ModelSpec wide_seq;
    wide_seq.add_input_shape(1);
    wide_seq.add_input_shape(1 << 18);
    wide_seq.add_layers()->mutable_rnn()->set_units(1);
    wide_seq.mutable_layers(0)->mutable_rnn()->set_return_sequences(true);
    wide_seq.add_layers()->mutable_time_dense()->set_units(1 << 18);
    wide_seq.set_loss(v1::LOSS_MSE);
    CreateModel(*c_, wide_seq, "wideseq");
    // Large activations per sample: a batch of a few hundred exceeds the
    // activation limit while the request itself is small.
    CreateModel(*c_, MlpSpec(2, 1 << 17, 2), "wide");
    v1::CreateModelRequest gan;
    gan.set_model_id("gan");
    gan.mutable_gan()->set_noise_dim(2);
    gan.mutable_gan()
        ->mutable_generator()
        ->add_layers()
        ->mutable_dense()
        ->set_units(2);
    gan.mutable_gan()
        ->mutable_discriminator()
        ->add_layers()
        ->mutable_dense()
        ->set_units(1);
    {
      v1::Model m;
      auto ctx = Ctx();
      ASSERT_TRUE(c_->models->CreateModel(ctx.get(), gan, &m).ok());
    }
    v1::JobSpec job;
    job.set_model_id("ok");
    job.set_dataset(dataset_);
    job.set_epochs(1);
    job.set_batch_size(16);
    finished_ = StartJob(*c_, job).job_id();
    ASSERT_EQ(WaitForJob(*c_, finished_).state(), v1::JOB_STATE_COMPLETED);
    baseline_ = ProbeInfer();
    ASSERT_EQ(baseline_.outputs().data_size(), 4);
  }

  // The valid call made after every bad one.
  v1::InferResponse ProbeInfer() {
    v1::InferRequest req;
    req.set_model_id("ok");
    *req.mutable_inputs() = Packed({2, 2}, {0.5f, -0.25f, 1.0f, 2.0f});
    v1::InferResponse resp;
    auto ctx = Ctx(10);
    grpc::Status s = c_->inference->Infer(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // --- Calls, each starting from a valid request that `edit` spoils. ---

  template <typename Req>
  using Edit = std::function<void(Req*)>;

  std::function<grpc::Status()> Create(Edit<v1::CreateModelRequest> edit) {
    return [this, edit]() {
      v1::CreateModelRequest req;
      *req.mutable_spec() = MlpSpec(2, 8, 2);
      edit(&req);
      v1::Model m;
      auto ctx = Ctx(10);
      return c_->models->CreateModel(ctx.get(), req, &m);
    };
  }
  std::function<grpc::Status()> Gan(Edit<v1::GanSpec> edit) {
    return Create([edit](v1::CreateModelRequest* r) {
      v1::GanSpec* g = r->mutable_gan();
      g->set_noise_dim(2);
      g->mutable_generator()->add_layers()->mutable_dense()->set_units(2);
      g->mutable_discriminator()->add_layers()->mutable_dense()->set_units(1);
      edit(g);
    });
  }
  template <typename Req, typename Resp>
  std::function<grpc::Status()> Unary(
      grpc::Status (v1::ModelService::Stub::*rpc)(grpc::ClientContext*,
                                                  const Req&, Resp*),
      Edit<Req> edit) {
    return [this, rpc, edit]() {
      Req req;
      edit(&req);
      Resp resp;
      auto ctx = Ctx(10);
      return ((*c_->models).*rpc)(ctx.get(), req, &resp);
    };
  }
  template <typename Req, typename Resp>
  std::function<grpc::Status()> Training(
      grpc::Status (v1::TrainingService::Stub::*rpc)(grpc::ClientContext*,
                                                     const Req&, Resp*),
      Edit<Req> edit) {
    return [this, rpc, edit]() {
      Req req;
      edit(&req);
      Resp resp;
      auto ctx = Ctx(10);
      return ((*c_->training).*rpc)(ctx.get(), req, &resp);
    };
  }
  std::function<grpc::Status()> Import(Edit<v1::ImportModelRequest> edit) {
    return [this, edit]() {
      v1::ExportModelRequest e;
      e.set_model_id("ok");
      v1::ExportModelResponse er;
      auto ctx = Ctx(10);
      EXPECT_TRUE(c_->models->ExportModel(ctx.get(), e, &er).ok());
      v1::ImportModelRequest req;
      *req.mutable_file() = er.file();
      edit(&req);
      v1::Model m;
      auto ctx2 = Ctx(10);
      return c_->models->ImportModel(ctx2.get(), req, &m);
    };
  }
  std::function<grpc::Status()> Start(Edit<v1::JobSpec> edit) {
    return [this, edit]() {
      v1::StartJobRequest req;
      v1::JobSpec* s = req.mutable_spec();
      s->set_model_id("ok");
      s->set_dataset(dataset_);
      s->set_epochs(1);
      s->set_batch_size(16);
      edit(s);
      v1::Job j;
      auto ctx = Ctx(10);
      grpc::Status st = c_->training->StartJob(ctx.get(), req, &j);
      if (st.ok()) {  // Do not leave a stray job training the probe model.
        v1::CancelJobRequest cr;
        cr.set_job_id(j.job_id());
        auto cctx = Ctx(10);
        c_->training->CancelJob(cctx.get(), cr, &j);
      }
      return st;
    };
  }
  std::function<grpc::Status()> Stream(Edit<v1::StreamMetricsRequest> edit) {
    return [this, edit]() {
      v1::StreamMetricsRequest req;
      req.set_job_id(finished_);
      edit(&req);
      grpc::Status st;
      ReadStream(*c_, req, &st);
      return st;
    };
  }
  std::function<grpc::Status()> Step(Edit<v1::TrainStepRequest> edit) {
    return [this, edit]() {
      v1::TrainStepRequest req;
      req.set_model_id("ok");
      *req.mutable_inputs() = Packed({2, 2}, {0, 1, 1, 0});
      *req.mutable_targets() = Packed({2}, {0, 1});
      edit(&req);
      v1::TrainStepResponse r;
      auto ctx = Ctx(10);
      return c_->training->TrainStep(ctx.get(), req, &r);
    };
  }
  // One valid step on "stream", then the spoiled request.
  std::function<grpc::Status()> TrainStream(Edit<v1::TrainStepRequest> edit,
                                            bool good_first = true) {
    return [this, edit, good_first]() {
      auto ctx = Ctx(10);
      auto rw = c_->training->TrainStream(ctx.get());
      v1::TrainStepRequest req;
      req.set_model_id("stream");
      *req.mutable_inputs() = Packed({2, 2}, {0, 1, 1, 0});
      *req.mutable_targets() = Packed({2}, {0, 1});
      v1::TrainStepResponse resp;
      if (good_first) {
        EXPECT_TRUE(rw->Write(req));
        EXPECT_TRUE(rw->Read(&resp));
        req.clear_model_id();
      }
      edit(&req);
      rw->Write(req);
      rw->WritesDone();
      while (rw->Read(&resp)) {
      }
      return rw->Finish();
    };
  }
  // Header, then the payload in one chunk; `edit` may change both.
  std::function<grpc::Status()> Upload(
      std::function<void(v1::DatasetHeader*, std::string*)> edit) {
    return [this, edit]() {
      std::vector<float> v = {0, 1, 1, 0, 2, 2, -1, -1, 0, 1, 1, 0};
      std::string payload(reinterpret_cast<const char*>(v.data()),
                          v.size() * 4);  // 4 samples of [2], 4 labels.
      v1::UploadDatasetRequest h;
      v1::DatasetHeader* hd = h.mutable_header();
      hd->set_name("bad");
      hd->add_sample_shape(2);
      hd->set_num_classes(2);
      hd->set_num_samples(4);
      edit(hd, &payload);
      if (hd->crc32c() == 0) hd->set_crc32c(server::Crc32c(payload));
      v1::DatasetInfo info;
      auto ctx = Ctx(10);
      auto w = c_->training->UploadDataset(ctx.get(), &info);
      w->Write(h);
      v1::UploadDatasetRequest chunk;
      chunk.set_chunk(payload);
      w->Write(chunk);
      w->WritesDone();
      return w->Finish();
    };
  }
  std::function<grpc::Status()> UploadMessages(
      std::vector<v1::UploadDatasetRequest> msgs) {
    return [this, msgs]() {
      v1::DatasetInfo info;
      auto ctx = Ctx(10);
      auto w = c_->training->UploadDataset(ctx.get(), &info);
      for (const auto& m : msgs) w->Write(m);
      w->WritesDone();
      return w->Finish();
    };
  }
  std::function<grpc::Status()> Infer(Edit<v1::InferRequest> edit) {
    return [this, edit]() {
      v1::InferRequest req;
      req.set_model_id("ok");
      *req.mutable_inputs() = Packed({1, 2}, {0.5f, 0.5f});
      edit(&req);
      v1::InferResponse r;
      auto ctx = Ctx(10);
      return c_->inference->Infer(ctx.get(), req, &r);
    };
  }
  std::function<grpc::Status()> Sample(Edit<v1::SampleRequest> edit) {
    return [this, edit]() {
      v1::SampleRequest req;
      req.set_model_id("seq");
      req.set_count(2);
      req.set_steps(3);
      edit(&req);
      v1::SampleResponse r;
      auto ctx = Ctx(10);
      return c_->inference->Sample(ctx.get(), req, &r);
    };
  }

  // A valid request but for the model: "seq" is no character model.
  std::function<grpc::Status()> SampleText(Edit<v1::SampleTextRequest> edit) {
    return [this, edit]() {
      v1::SampleTextRequest req;
      req.set_model_id("seq");
      req.set_dataset("chars:devil");
      req.set_prime("A");
      req.set_length(5);
      req.set_temperature(1);
      edit(&req);
      v1::SampleTextResponse r;
      auto ctx = Ctx(10);
      return c_->inference->SampleText(ctx.get(), req, &r);
    };
  }

  std::vector<Case> Cases();

  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Client> c_;
  std::string dataset_, finished_;
  v1::InferResponse baseline_;
};

std::vector<Case> BadInputTest::Cases() {
  using CM = v1::CreateModelRequest;
  using TS = v1::TrainStepRequest;
  using IR = v1::InferRequest;
  using SR = v1::SampleRequest;
  using JS = v1::JobSpec;
  const StatusCode kIA = StatusCode::INVALID_ARGUMENT;
  const StatusCode kNF = StatusCode::NOT_FOUND;
  const StatusCode kRE = StatusCode::RESOURCE_EXHAUSTED;
  const StatusCode kFP = StatusCode::FAILED_PRECONDITION;
  const int64_t kHuge = int64_t{1} << 40;
  std::vector<Case> cases;
  auto add = [&](std::string name, std::function<grpc::Status()> call,
                 StatusCode code) {
    cases.push_back({std::move(name), std::move(call), code});
  };
  auto layer0 = [](CM* r) { return r->mutable_spec()->mutable_layers(0); };
  auto spec_of = [](CM* r) { return r->mutable_spec(); };

  // --- ModelService.CreateModel ---
  add("CreateModel: no definition", Create([](CM* r) { r->clear_spec(); }),
      kIA);
  add("CreateModel: empty input_shape",
      Create([=](CM* r) { spec_of(r)->clear_input_shape(); }), kIA);
  add("CreateModel: no layers",
      Create([=](CM* r) { spec_of(r)->clear_layers(); }), kIA);
  add("CreateModel: layer without kind",
      Create([=](CM* r) { spec_of(r)->add_layers()->set_name("x"); }), kIA);
  for (int64_t d :
       {int64_t{-1}, int64_t{0}, kHuge, std::numeric_limits<int64_t>::min(),
        std::numeric_limits<int64_t>::max()}) {
    add(absl::StrCat("CreateModel: input_shape [", d, "]"),
        Create([=](CM* r) { spec_of(r)->set_input_shape(0, d); }), kIA);
  }
  add("CreateModel: 9-dimensional input", Create([=](CM* r) {
        for (int i = 0; i < 8; ++i) spec_of(r)->add_input_shape(1);
      }),
      kIA);
  add("CreateModel: input of 2^26 elements", Create([=](CM* r) {
        spec_of(r)->set_input_shape(0, 1 << 13);
        spec_of(r)->add_input_shape(1 << 13);
      }),
      kRE);
  for (int64_t u : {int64_t{0}, int64_t{-1}, kHuge}) {
    add(absl::StrCat("CreateModel: dense units ", u),
        Create([=](CM* r) { layer0(r)->mutable_dense()->set_units(u); }), kIA);
  }
  add("CreateModel: dense 1e6 x 1e6 (4 TB of weights)", Create([=](CM* r) {
        spec_of(r)->set_input_shape(0, 1000000);
        layer0(r)->mutable_dense()->set_units(1000000);
      }),
      kRE);
  add("CreateModel: conv2d 65536 filters of 64x27x27", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {64, 28, 28}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        auto* c = spec_of(r)->add_layers()->mutable_conv2d();
        c->set_filters(65536);
        c->set_kernel(27);
      }),
      kRE);
  add("CreateModel: conv2d im2col workspace of 4e12 floats", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 1024, 1024}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        auto* c = spec_of(r)->add_layers()->mutable_conv2d();
        c->set_filters(1);
        c->set_kernel(1024);
        c->set_padding(1024);
      }),
      kRE);
  add("CreateModel: conv2d output of 2.7e11 floats per sample",
      Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 1, 1}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        auto* c = spec_of(r)->add_layers()->mutable_conv2d();
        c->set_filters(65536);
        c->set_kernel(1);
        c->set_padding(1024);
      }),
      kRE);
  add("CreateModel: lstm 65536 units on 65536 features", Create([=](CM* r) {
        spec_of(r)->set_input_shape(0, 4);
        spec_of(r)->add_input_shape(65536);
        spec_of(r)->clear_layers();
        spec_of(r)->add_layers()->mutable_lstm()->set_units(65536);
      }),
      kRE);
  add("CreateModel: lstm over 2^23 steps (caches per sample)",
      Create([=](CM* r) {
        spec_of(r)->set_input_shape(0, 1 << 23);
        spec_of(r)->add_input_shape(1);
        spec_of(r)->clear_layers();
        spec_of(r)->add_layers()->mutable_lstm()->set_units(64);
      }),
      kRE);
  add("CreateModel: residual projection 2^20 x 2^20", Create([=](CM* r) {
        spec_of(r)->set_input_shape(0, 1 << 20);
        spec_of(r)->clear_layers();
        auto* res = spec_of(r)->add_layers()->mutable_residual();
        res->add_body()->mutable_dense()->set_units((1 << 20) + 1);
      }),
      kRE);
  add("CreateModel: 1001 layers", Create([=](CM* r) {
        for (int i = 0; i < 1001; ++i) spec_of(r)->add_layers()->mutable_relu();
      }),
      kRE);
  add("CreateModel: residual nested 9 deep", Create([=](CM* r) {
        v1::LayerSpec inner;
        inner.mutable_relu();
        for (int i = 0; i < 9; ++i) {
          v1::LayerSpec outer;
          *outer.mutable_residual()->add_body() = inner;
          inner = outer;
        }
        *spec_of(r)->add_layers() = inner;
      }),
      kIA);
  add("CreateModel: residual with empty body",
      Create([=](CM* r) { spec_of(r)->add_layers()->mutable_residual(); }),
      kIA);
  add("CreateModel: rnn units -3", Create([=](CM* r) {
        spec_of(r)->add_input_shape(2);
        spec_of(r)->clear_layers();
        spec_of(r)->add_layers()->mutable_rnn()->set_units(-3);
      }),
      kIA);
  add("CreateModel: lstm bptt_window -1", Create([=](CM* r) {
        spec_of(r)->add_input_shape(2);
        spec_of(r)->clear_layers();
        auto* l = spec_of(r)->add_layers()->mutable_lstm();
        l->set_units(3);
        l->set_bptt_window(-1);
      }),
      kIA);
  add("CreateModel: conv2d stride -1", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 8, 8}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        auto* c = spec_of(r)->add_layers()->mutable_conv2d();
        c->set_filters(2);
        c->set_stride(-1);
      }),
      kIA);
  add("CreateModel: conv2d padding -1", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 8, 8}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        auto* c = spec_of(r)->add_layers()->mutable_conv2d();
        c->set_filters(2);
        c->set_padding(-1);
      }),
      kIA);
  add("CreateModel: conv2d kernel larger than its input", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 2, 2}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        auto* c = spec_of(r)->add_layers()->mutable_conv2d();
        c->set_filters(2);
        c->set_kernel(5);
      }),
      kIA);
  add("CreateModel: max_pool2d kernel -1", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 8, 8}) spec_of(r)->add_input_shape(d);
        spec_of(r)->clear_layers();
        spec_of(r)->add_layers()->mutable_max_pool2d()->set_kernel(-1);
      }),
      kIA);
  add("CreateModel: conv2d on a flat input (wrong shape)", Create([=](CM* r) {
        spec_of(r)->clear_layers();
        spec_of(r)->add_layers()->mutable_conv2d()->set_filters(2);
      }),
      kIA);
  add("CreateModel: dense on an image (wrong shape)", Create([=](CM* r) {
        spec_of(r)->clear_input_shape();
        for (int64_t d : {1, 4, 4}) spec_of(r)->add_input_shape(d);
      }),
      kIA);
  add("CreateModel: time_dense on a flat input (wrong shape)",
      Create([=](CM* r) {
        spec_of(r)->clear_layers();
        spec_of(r)->add_layers()->mutable_time_dense()->set_units(2);
      }),
      kIA);
  const std::vector<std::pair<std::string, float>> kBadFloats = {
      {"NaN", kNaN}, {"+Inf", kInf}, {"-Inf", -kInf}, {"negative", -0.5f}};
  for (const auto& [what, v] : kBadFloats) {
    add("CreateModel: dropout keep_prob " + what, Create([=](CM* r) {
          spec_of(r)->add_layers()->mutable_dropout()->set_keep_prob(v);
        }),
        kIA);
    add("CreateModel: leaky_relu alpha " + what, Create([=](CM* r) {
          spec_of(r)->add_layers()->mutable_leaky_relu()->set_alpha(v);
        }),
        kIA);
    add("CreateModel: batch_norm momentum " + what, Create([=](CM* r) {
          spec_of(r)->add_layers()->mutable_batch_norm()->set_momentum(v);
        }),
        kIA);
    add("CreateModel: batch_norm epsilon " + what, Create([=](CM* r) {
          spec_of(r)->add_layers()->mutable_batch_norm()->set_epsilon(v);
        }),
        kIA);
  }
  add("CreateModel: unknown loss 42", Create([=](CM* r) {
        spec_of(r)->set_loss(static_cast<v1::LossKind>(42));
      }),
      kIA);
  add("CreateModel: unknown init -7", Create([=](CM* r) {
        spec_of(r)->set_init(static_cast<v1::InitKind>(-7));
      }),
      kIA);
  add("CreateModel: unknown layer init 99", Create([=](CM* r) {
        layer0(r)->set_init(static_cast<v1::InitKind>(99));
      }),
      kIA);
  add("CreateModel: layer name with '/'",
      Create([=](CM* r) { layer0(r)->set_name("a/b"); }), kIA);
  add("CreateModel: layer name of 300 chars",
      Create([=](CM* r) { layer0(r)->set_name(kLongId); }), kIA);
  add("CreateModel: spec name of 300 chars",
      Create([=](CM* r) { spec_of(r)->set_name(kLongId); }), kIA);
  for (const auto& [what, id] : kBadIds) {
    if (id.empty()) continue;  // Empty lets the server choose.
    add("CreateModel: model_id " + what,
        Create([id = id](CM* r) { r->set_model_id(id); }), kIA);
  }
  add("CreateModel: duplicate model_id",
      Create([](CM* r) { r->set_model_id("ok"); }), StatusCode::ALREADY_EXISTS);
  add("CreateModel: GAN noise_dim 0",
      Gan([](v1::GanSpec* g) { g->set_noise_dim(0); }), kIA);
  add("CreateModel: GAN noise_dim -4",
      Gan([](v1::GanSpec* g) { g->set_noise_dim(-4); }), kIA);
  add("CreateModel: GAN noise_dim 2^40",
      Gan([=](v1::GanSpec* g) { g->set_noise_dim(kHuge); }), kIA);
  add("CreateModel: GAN unknown noise 9", Gan([](v1::GanSpec* g) {
        g->set_noise(static_cast<v1::NoiseDistribution>(9));
      }),
      kIA);
  add("CreateModel: GAN without generator layers",
      Gan([](v1::GanSpec* g) { g->mutable_generator()->clear_layers(); }), kIA);
  add("CreateModel: GAN discriminator with 2 outputs", Gan([](v1::GanSpec* g) {
        g->mutable_discriminator()
            ->mutable_layers(0)
            ->mutable_dense()
            ->set_units(2);
      }),
      kIA);
  add("CreateModel: GAN generator 65536 x 1e6", Gan([](v1::GanSpec* g) {
        g->set_noise_dim(65536);
        g->mutable_generator()->mutable_layers(0)->mutable_dense()->set_units(
            1000000);
      }),
      kRE);

  // --- ModelService: Get / Delete / Export by id ---
  for (const auto& [what, id] : kBadIds) {
    add("GetModel: model_id " + what,
        Unary<v1::GetModelRequest, v1::Model>(
            &v1::ModelService::Stub::GetModel,
            [id = id](v1::GetModelRequest* r) { r->set_model_id(id); }),
        kIA);
    add("DeleteModel: model_id " + what,
        Unary<v1::DeleteModelRequest, v1::DeleteModelResponse>(
            &v1::ModelService::Stub::DeleteModel,
            [id = id](v1::DeleteModelRequest* r) { r->set_model_id(id); }),
        kIA);
    add("ExportModel: model_id " + what,
        Unary<v1::ExportModelRequest, v1::ExportModelResponse>(
            &v1::ModelService::Stub::ExportModel,
            [id = id](v1::ExportModelRequest* r) { r->set_model_id(id); }),
        kIA);
  }
  add("GetModel: unknown",
      Unary<v1::GetModelRequest, v1::Model>(
          &v1::ModelService::Stub::GetModel,
          [](v1::GetModelRequest* r) { r->set_model_id("nope"); }),
      kNF);
  add("DeleteModel: unknown",
      Unary<v1::DeleteModelRequest, v1::DeleteModelResponse>(
          &v1::ModelService::Stub::DeleteModel,
          [](v1::DeleteModelRequest* r) { r->set_model_id("nope"); }),
      kNF);
  add("ExportModel: unknown",
      Unary<v1::ExportModelRequest, v1::ExportModelResponse>(
          &v1::ModelService::Stub::ExportModel,
          [](v1::ExportModelRequest* r) { r->set_model_id("nope"); }),
      kNF);
  add("ListModels: page_size -1",
      Unary<v1::ListModelsRequest, v1::ListModelsResponse>(
          &v1::ModelService::Stub::ListModels,
          [](v1::ListModelsRequest* r) { r->set_page_size(-1); }),
      kIA);
  // Page tokens are ids the server issued: anything else is refused.
  add("ListModels: page_token ../x",
      Unary<v1::ListModelsRequest, v1::ListModelsResponse>(
          &v1::ModelService::Stub::ListModels,
          [](v1::ListModelsRequest* r) { r->set_page_token("../x"); }),
      kIA);
  add("ListModels: page_token of 5 MiB",
      Unary<v1::ListModelsRequest, v1::ListModelsResponse>(
          &v1::ModelService::Stub::ListModels,
          [](v1::ListModelsRequest* r) {
            r->set_page_token(std::string(5 << 20, 'a'));
          }),
      kIA);
  add("ListModels: page_token with NUL",
      Unary<v1::ListModelsRequest, v1::ListModelsResponse>(
          &v1::ModelService::Stub::ListModels,
          [](v1::ListModelsRequest* r) {
            r->set_page_token(std::string("ok\0", 3));
          }),
      kIA);
  // An id the server could have issued (a model since deleted) still pages.
  add("ListModels: page_token of a deleted model",
      Unary<v1::ListModelsRequest, v1::ListModelsResponse>(
          &v1::ModelService::Stub::ListModels,
          [](v1::ListModelsRequest* r) { r->set_page_token("gone"); }),
      StatusCode::OK);

  // --- ModelService.ImportModel ---
  using IM = v1::ImportModelRequest;
  auto p0 = [](IM* r) { return r->mutable_file()->mutable_params(0); };
  add("ImportModel: no file", Import([](IM* r) { r->clear_file(); }), kIA);
  add("ImportModel: file without definition",
      Import([](IM* r) { r->mutable_file()->clear_spec(); }), kIA);
  add("ImportModel: format_version 99",
      Import([](IM* r) { r->mutable_file()->set_format_version(99); }), kIA);
  add("ImportModel: trained_steps -1",
      Import([](IM* r) { r->mutable_file()->set_trained_steps(-1); }), kIA);
  // TrainStep counts on from trained_steps: it must not overflow.
  add("ImportModel: trained_steps INT64_MAX", Import([](IM* r) {
        r->mutable_file()->set_trained_steps(
            std::numeric_limits<int64_t>::max());
      }),
      kIA);
  add("ImportModel: a parameter missing",
      Import([](IM* r) { r->mutable_file()->mutable_params()->RemoveLast(); }),
      kIA);
  add("ImportModel: an extra parameter", Import([](IM* r) {
        *r->mutable_file()->add_params() = r->file().params(0);
      }),
      kIA);
  add("ImportModel: parameter renamed",
      Import([=](IM* r) { p0(r)->set_name("../../etc/passwd"); }), kIA);
  add("ImportModel: wrong weight shape [7, 2]",
      Import([=](IM* r) { p0(r)->mutable_tensor()->set_shape(0, 7); }), kIA);
  add("ImportModel: weight NaN",
      Import([=](IM* r) { p0(r)->mutable_tensor()->set_data(0, kNaN); }), kIA);
  add("ImportModel: weight +Inf",
      Import([=](IM* r) { p0(r)->mutable_tensor()->set_data(3, kInf); }), kIA);
  add("ImportModel: weight data shorter than its shape", Import([=](IM* r) {
        p0(r)->mutable_tensor()->mutable_data()->RemoveLast();
      }),
      kIA);
  add("ImportModel: weight raw_data shorter than its shape", Import([=](IM* r) {
        v1::Tensor* t = p0(r)->mutable_tensor();
        std::string raw(size_t(t->data_size()) * 4 - 4, '\0');
        t->clear_data();
        t->set_raw_data(raw);
      }),
      kIA);
  add("ImportModel: weight shape [-8, 2]",
      Import([=](IM* r) { p0(r)->mutable_tensor()->set_shape(0, -8); }), kIA);
  add("ImportModel: weight shape [2^40, 2]",
      Import([=](IM* r) { p0(r)->mutable_tensor()->set_shape(0, kHuge); }),
      kIA);
  add("ImportModel: weight claims 2^22 elements with no data",
      Import([=](IM* r) {
        v1::Tensor* t = p0(r)->mutable_tensor();
        t->set_shape(0, 1 << 11);
        t->set_shape(1, 1 << 11);
        t->clear_data();
      }),
      kIA);
  add("ImportModel: definition of 1e12 parameters", Import([](IM* r) {
        v1::ModelSpec* s = r->mutable_file()->mutable_spec();
        s->set_input_shape(0, 1000000);
        s->mutable_layers(0)->mutable_dense()->set_units(1000000);
      }),
      kRE);
  for (const auto& [what, id] : kBadIds) {
    if (id.empty()) continue;
    add("ImportModel: model_id " + what,
        Import([id = id](IM* r) { r->set_model_id(id); }), kIA);
  }

  // --- TrainingService.StartJob ---
  add(
      "StartJob: no spec",
      [this]() {
        v1::StartJobRequest req;
        v1::Job j;
        auto ctx = Ctx(10);
        return c_->training->StartJob(ctx.get(), req, &j);
      },
      kIA);
  for (const auto& [what, id] : kBadIds) {
    add("StartJob: model_id " + what,
        Start([id = id](JS* s) { s->set_model_id(id); }), kIA);
    add("StartJob: dataset " + what,
        Start([id = id](JS* s) { s->set_dataset(id); }), kIA);
  }
  add("StartJob: unknown model", Start([](JS* s) { s->set_model_id("nope"); }),
      kNF);
  add("StartJob: unknown dataset",
      Start([](JS* s) { s->set_dataset("ds-none"); }), kNF);
  add("StartJob: model input [3,4] for samples [2] (wrong shape)",
      Start([](JS* s) { s->set_model_id("seq"); }), kIA);
  using OC = v1::OptimizerConfig;
  const std::vector<std::pair<std::string, std::function<void(OC*, float)>>>
      kHyper = {
          {"learning_rate", [](OC* o, float v) { o->set_learning_rate(v); }},
          {"momentum", [](OC* o, float v) { o->set_momentum(v); }},
          {"rho", [](OC* o, float v) { o->set_rho(v); }},
          {"beta1", [](OC* o, float v) { o->set_beta1(v); }},
          {"beta2", [](OC* o, float v) { o->set_beta2(v); }},
          {"epsilon", [](OC* o, float v) { o->set_epsilon(v); }},
          {"weight_decay", [](OC* o, float v) { o->set_weight_decay(v); }},
          {"clip_norm", [](OC* o, float v) { o->set_clip_norm(v); }},
          {"decay_rate", [](OC* o, float v) { o->set_decay_rate(v); }},
      };
  for (const auto& [field, set] : kHyper) {
    for (const auto& [what, v] : kBadFloats) {
      add("StartJob: optimizer." + field + " " + what,
          Start([set = set, v = v](JS* s) {
            s->mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
            set(s->mutable_optimizer(), v);
          }),
          kIA);
    }
  }
  for (const auto& [what, v] : kBadFloats) {
    add("TrainStep: optimizer.learning_rate " + what,
        Step([v = v](TS* r) { r->mutable_optimizer()->set_learning_rate(v); }),
        kIA);
    add("TrainStep: optimizer.beta2 " + what, Step([v = v](TS* r) {
          r->mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
          r->mutable_optimizer()->set_beta2(v);
        }),
        kIA);
  }
  add("StartJob: optimizer.momentum 1.0",
      Start([](JS* s) { s->mutable_optimizer()->set_momentum(1.0f); }), kIA);
  add("StartJob: optimizer.decay_steps -1",
      Start([](JS* s) { s->mutable_optimizer()->set_decay_steps(-1); }), kIA);
  add("StartJob: optimizer.kind 99", Start([](JS* s) {
        s->mutable_optimizer()->set_kind(static_cast<v1::OptimizerKind>(99));
      }),
      kIA);
  add("StartJob: optimizer.kind -1", Start([](JS* s) {
        s->mutable_optimizer()->set_kind(static_cast<v1::OptimizerKind>(-1));
      }),
      kIA);
  add("StartJob: optimizer.schedule 42", Start([](JS* s) {
        s->mutable_optimizer()->set_schedule(static_cast<v1::LrSchedule>(42));
      }),
      kIA);
  add("StartJob: epochs -1", Start([](JS* s) { s->set_epochs(-1); }), kIA);
  add("StartJob: epochs 2^31-1",
      Start([](JS* s) { s->set_epochs(std::numeric_limits<int32_t>::max()); }),
      kIA);
  add("StartJob: batch_size -1", Start([](JS* s) { s->set_batch_size(-1); }),
      kIA);
  add("StartJob: batch_size 2^40",
      Start([=](JS* s) { s->set_batch_size(kHuge); }), kIA);
  add("StartJob: eval_every_steps -1",
      Start([](JS* s) { s->set_eval_every_steps(-1); }), kIA);
  add("StartJob: checkpoint_every_steps -1",
      Start([](JS* s) { s->set_checkpoint_every_steps(-1); }), kIA);
  add("StartJob: stats_every -2", Start([](JS* s) { s->set_stats_every(-2); }),
      kIA);
  add("StartJob: max_train_samples -1",
      Start([](JS* s) { s->set_max_train_samples(-1); }), kIA);
  add("StartJob: max_steps -1", Start([](JS* s) { s->set_max_steps(-1); }),
      kIA);
  add("StartJob: gan_d_steps -1", Start([](JS* s) { s->set_gan_d_steps(-1); }),
      kIA);
  add("StartJob: sample_shape [-2]",
      Start([](JS* s) { s->add_sample_shape(-2); }), kIA);
  add("StartJob: sample_shape [2^40]",
      Start([=](JS* s) { s->add_sample_shape(kHuge); }), kIA);
  add("StartJob: sample_shape [3] (wrong element count)",
      Start([](JS* s) { s->add_sample_shape(3); }), kIA);
  add("StartJob: label of 300 chars",
      Start([](JS* s) { s->set_label(kLongId); }), kIA);
  add("StartJob: batch too large for the activation limit", Start([](JS* s) {
        s->set_model_id("wide");
        s->set_batch_size(4096);
      }),
      kRE);

  // --- TrainingService: jobs by id ---
  for (const auto& [what, id] : kBadIds) {
    add("GetJob: job_id " + what,
        Training<v1::GetJobRequest, v1::Job>(
            &v1::TrainingService::Stub::GetJob,
            [id = id](v1::GetJobRequest* r) { r->set_job_id(id); }),
        kIA);
    add("CancelJob: job_id " + what,
        Training<v1::CancelJobRequest, v1::Job>(
            &v1::TrainingService::Stub::CancelJob,
            [id = id](v1::CancelJobRequest* r) { r->set_job_id(id); }),
        kIA);
    add("PauseJob: job_id " + what,
        Training<v1::PauseJobRequest, v1::Job>(
            &v1::TrainingService::Stub::PauseJob,
            [id = id](v1::PauseJobRequest* r) { r->set_job_id(id); }),
        kIA);
    add("ResumeJob: job_id " + what,
        Training<v1::ResumeJobRequest, v1::Job>(
            &v1::TrainingService::Stub::ResumeJob,
            [id = id](v1::ResumeJobRequest* r) { r->set_job_id(id); }),
        kIA);
    add("StreamMetrics: job_id " + what,
        Stream([id = id](v1::StreamMetricsRequest* r) { r->set_job_id(id); }),
        kIA);
    add("DeleteDataset: dataset_id " + what,
        Training<v1::DeleteDatasetRequest, v1::DeleteDatasetResponse>(
            &v1::TrainingService::Stub::DeleteDataset,
            [id = id](v1::DeleteDatasetRequest* r) { r->set_dataset_id(id); }),
        kIA);
    if (!id.empty()) {  // Empty means "all models".
      add("ListJobs: model_id " + what,
          Training<v1::ListJobsRequest, v1::ListJobsResponse>(
              &v1::TrainingService::Stub::ListJobs,
              [id = id](v1::ListJobsRequest* r) { r->set_model_id(id); }),
          kIA);
    }
  }
  add("GetJob: unknown",
      Training<v1::GetJobRequest, v1::Job>(
          &v1::TrainingService::Stub::GetJob,
          [](v1::GetJobRequest* r) { r->set_job_id("j-none"); }),
      kNF);
  add("CancelJob: unknown",
      Training<v1::CancelJobRequest, v1::Job>(
          &v1::TrainingService::Stub::CancelJob,
          [](v1::CancelJobRequest* r) { r->set_job_id("j-none"); }),
      kNF);
  add("PauseJob: unknown",
      Training<v1::PauseJobRequest, v1::Job>(
          &v1::TrainingService::Stub::PauseJob,
          [](v1::PauseJobRequest* r) { r->set_job_id("j-none"); }),
      kNF);
  add("ResumeJob: unknown",
      Training<v1::ResumeJobRequest, v1::Job>(
          &v1::TrainingService::Stub::ResumeJob,
          [](v1::ResumeJobRequest* r) { r->set_job_id("j-none"); }),
      kNF);
  add("CancelJob: completed job",
      Training<v1::CancelJobRequest, v1::Job>(
          &v1::TrainingService::Stub::CancelJob,
          [this](v1::CancelJobRequest* r) { r->set_job_id(finished_); }),
      kFP);
  add("PauseJob: completed job",
      Training<v1::PauseJobRequest, v1::Job>(
          &v1::TrainingService::Stub::PauseJob,
          [this](v1::PauseJobRequest* r) { r->set_job_id(finished_); }),
      kFP);
  add("ResumeJob: completed job",
      Training<v1::ResumeJobRequest, v1::Job>(
          &v1::TrainingService::Stub::ResumeJob,
          [this](v1::ResumeJobRequest* r) { r->set_job_id(finished_); }),
      kFP);
  add("StreamMetrics: unknown job",
      Stream([](v1::StreamMetricsRequest* r) { r->set_job_id("j-none"); }),
      kNF);
  add("StreamMetrics: from_step -1",
      Stream([](v1::StreamMetricsRequest* r) { r->set_from_step(-1); }), kIA);
  add("StreamMetrics: every_n -1",
      Stream([](v1::StreamMetricsRequest* r) { r->set_every_n(-1); }), kIA);
  add("ListJobs: state 99",
      Training<v1::ListJobsRequest, v1::ListJobsResponse>(
          &v1::TrainingService::Stub::ListJobs,
          [](v1::ListJobsRequest* r) {
            r->set_state(static_cast<v1::JobState>(99));
          }),
      kIA);
  add("DeleteDataset: unknown",
      Training<v1::DeleteDatasetRequest, v1::DeleteDatasetResponse>(
          &v1::TrainingService::Stub::DeleteDataset,
          [](v1::DeleteDatasetRequest* r) { r->set_dataset_id("ds-none"); }),
      kNF);
  add("DeleteDataset: built-in mnist",
      Training<v1::DeleteDatasetRequest, v1::DeleteDatasetResponse>(
          &v1::TrainingService::Stub::DeleteDataset,
          [](v1::DeleteDatasetRequest* r) { r->set_dataset_id("mnist"); }),
      kIA);

  // --- TrainingService.TrainStep (and TrainStream) ---
  for (const auto& [what, id] : kBadIds) {
    add("TrainStep: model_id " + what,
        Step([id = id](TS* r) { r->set_model_id(id); }), kIA);
    add("TrainStream: first model_id " + what,
        TrainStream([id = id](TS* r) { r->set_model_id(id); },
                    /*good_first=*/false),
        kIA);
  }
  add("TrainStep: unknown model", Step([](TS* r) { r->set_model_id("nope"); }),
      kNF);
  add("TrainStream: unknown model",
      TrainStream([](TS* r) { r->set_model_id("nope"); }, false), kNF);
  add("TrainStream: model_id changes mid-stream",
      TrainStream([](TS* r) { r->set_model_id("ok"); }), kIA);
  add("TrainStep: a GAN pair", Step([](TS* r) { r->set_model_id("gan"); }),
      kIA);
  // Tensor rows, shared by TrainStep inputs/targets, TrainStream and Infer.
  struct TensorRow {
    std::string what;
    v1::Tensor t;
    StatusCode code;
  };
  const std::vector<TensorRow> kBadInputs = {
      {"missing", v1::Tensor(), kIA},
      {"NaN (packed)", Packed({2, 2}, {0, kNaN, 1, 0}), kIA},
      {"+Inf (packed)", Packed({2, 2}, {0, 1, kInf, 0}), kIA},
      {"-Inf (packed)", Packed({2, 2}, {-kInf, 1, 1, 0}), kIA},
      {"NaN (raw)", Raw({2, 2}, {0, 1, 1, kNaN}), kIA},
      {"+Inf (raw)", Raw({2, 2}, {kInf, 1, 1, 0}), kIA},
      {"shape [2,2], 3 packed values", Packed({2, 2}, {0, 1, 1}), kIA},
      {"shape [2,2], 5 packed values", Packed({2, 2}, {0, 1, 1, 0, 1}), kIA},
      {"shape [2,2], 12 raw bytes", Raw({2, 2}, {0, 1, 1}), kIA},
      {"shape [2,2], 17 raw bytes", Raw({2, 2}, {0, 1, 1, 0}, 1), kIA},
      {"shape [2,2], 15 raw bytes", Raw({2, 2}, {0, 1, 1, 0}, -1), kIA},
      {"both data and raw_data",
       [] {
         v1::Tensor t = Packed({2, 2}, {0, 1, 1, 0});
         t.set_raw_data(std::string(16, '\0'));
         return t;
       }(),
       kIA},
      {"both raw_data and uint8_data",
       Bytes({2, 2}, "\1\2\3\4", 255.0f,
             /*raw=*/true),
       kIA},
      {"both data and uint8_data",
       Bytes({2, 2}, "\1\2\3\4", 255.0f,
             /*raw=*/false, /*packed=*/true),
       kIA},
      {"shape [2,2], 3 uint8 bytes", Bytes({2, 2}, "\1\2\3", 255.0f), kIA},
      {"shape [2,2], 5 uint8 bytes", Bytes({2, 2}, "\1\2\3\4\5", 255.0f), kIA},
      {"uint8_data, divisor 0", Bytes({2, 2}, "\1\2\3\4", 0.0f), kIA},
      {"uint8_data, divisor -1", Bytes({2, 2}, "\1\2\3\4", -1.0f), kIA},
      {"uint8_data, divisor NaN", Bytes({2, 2}, "\1\2\3\4", kNaN), kIA},
      {"uint8_data, divisor +Inf", Bytes({2, 2}, "\1\2\3\4", kInf), kIA},
      {"uint8_data over a divisor of 1e-45 (overflows)",
       Bytes({2, 2}, "\1\2\3\377", 1e-45f), kIA},
      {"uint8_divisor without uint8_data",
       Bytes({2, 2}, "", 255.0f,
             /*raw=*/false,
             /*packed=*/true),
       kIA},
      {"wrong features [2,3]", Packed({2, 3}, {0, 1, 2, 3, 4, 5}), kIA},
      {"rank 1 [4]", Packed({4}, {0, 1, 1, 0}), kIA},
      {"rank 3 [2,2,1]", Packed({2, 2, 1}, {0, 1, 1, 0}), kIA},
      {"empty batch [0,2]", Packed({0, 2}, {}), kIA},
      {"negative dim [-2,2]", Packed({-2, 2}, {0, 1, 1, 0}), kIA},
      {"huge dim [2^40,2]", Packed({int64_t{1} << 40, 2}, {0, 1, 1, 0}), kIA},
      {"2^40 elements", Packed({1 << 20, 1 << 20}, {0, 1, 1, 0}), kRE},
      {"2^23 elements declared, 4 sent", Packed({1 << 22, 2}, {0, 1, 1, 0}),
       kIA},
      {"9 dimensions", Packed({2, 2, 1, 1, 1, 1, 1, 1, 1}, {0, 1, 1, 0}), kIA},
  };
  for (const TensorRow& row : kBadInputs) {
    add("TrainStep: inputs " + row.what,
        Step([t = row.t](TS* r) { *r->mutable_inputs() = t; }), row.code);
    add("TrainStream: inputs " + row.what,
        TrainStream([t = row.t](TS* r) { *r->mutable_inputs() = t; }),
        row.code);
    add("Infer: inputs " + row.what,
        Infer([t = row.t](IR* r) { *r->mutable_inputs() = t; }), row.code);
  }
  const std::vector<TensorRow> kBadTargets = {
      {"missing", v1::Tensor(), kIA},
      {"NaN", Packed({2}, {0, kNaN}), kIA},
      {"+Inf (raw)", Raw({2}, {kInf, 1}), kIA},
      {"class 5 of 2", Packed({2}, {0, 5}), kIA},
      {"class -1", Packed({2}, {-1, 1}), kIA},
      {"class 0.5", Packed({2}, {0.5f, 1}), kIA},
      {"batch 3 for inputs of 2", Packed({3}, {0, 1, 1}), kIA},
      {"shape [2], 1 value", Packed({2}, {0}), kIA},
      {"shape [2], 7 raw bytes", Raw({2}, {0, 1}, -1), kIA},
  };
  for (const TensorRow& row : kBadTargets) {
    add("TrainStep: targets " + row.what,
        Step([t = row.t](TS* r) { *r->mutable_targets() = t; }), row.code);
  }
  add("TrainStep: optimizer.kind 99", Step([](TS* r) {
        r->mutable_optimizer()->set_kind(static_cast<v1::OptimizerKind>(99));
      }),
      kIA);
  add("TrainStep: optimizer.schedule -3", Step([](TS* r) {
        r->mutable_optimizer()->set_schedule(static_cast<v1::LrSchedule>(-3));
      }),
      kIA);
  add("TrainStream: NaN optimizer.clip_norm",
      TrainStream([](TS* r) { r->mutable_optimizer()->set_clip_norm(kNaN); }),
      kIA);
  add("TrainStep: batch too large for the activation limit", Step([](TS* r) {
        r->set_model_id("wide");
        std::vector<float> x(2 * 512, 0.5f), y(512, 1.0f);
        *r->mutable_inputs() = Raw({512, 2}, x);
        *r->mutable_targets() = Raw({512}, y);
      }),
      kRE);

  // --- TrainingService.UploadDataset ---
  using DH = v1::DatasetHeader;
  add("UploadDataset: no messages", UploadMessages({}), kIA);
  {
    v1::UploadDatasetRequest chunk;
    chunk.set_chunk("abcd");
    add("UploadDataset: chunk before the header", UploadMessages({chunk}), kIA);
    add("UploadDataset: empty first message",
        UploadMessages({v1::UploadDatasetRequest()}), kIA);
  }
  add("UploadDataset: empty sample_shape",
      Upload([](DH* h, std::string*) { h->clear_sample_shape(); }), kIA);
  add("UploadDataset: sample_shape [-2]",
      Upload([](DH* h, std::string*) { h->set_sample_shape(0, -2); }), kIA);
  add("UploadDataset: sample_shape [0]",
      Upload([](DH* h, std::string*) { h->set_sample_shape(0, 0); }), kIA);
  add("UploadDataset: sample_shape [2^40]",
      Upload([=](DH* h, std::string*) { h->set_sample_shape(0, kHuge); }), kIA);
  add("UploadDataset: 9-dimensional samples", Upload([](DH* h, std::string*) {
        for (int i = 0; i < 8; ++i) h->add_sample_shape(1);
      }),
      kIA);
  add("UploadDataset: num_samples 0",
      Upload([](DH* h, std::string*) { h->set_num_samples(0); }), kIA);
  add("UploadDataset: num_samples -4",
      Upload([](DH* h, std::string*) { h->set_num_samples(-4); }), kIA);
  add("UploadDataset: num_samples 2^40",
      Upload([=](DH* h, std::string*) { h->set_num_samples(kHuge); }), kIA);
  add("UploadDataset: claims 2 GB", Upload([](DH* h, std::string*) {
        h->set_sample_shape(0, 1 << 17);  // 512 KiB per sample...
        h->set_num_samples(4096);         // ... times 4096 = 2 GiB.
      }),
      kRE);
  add("UploadDataset: test_samples -1",
      Upload([](DH* h, std::string*) { h->set_test_samples(-1); }), kIA);
  add("UploadDataset: test_samples == num_samples",
      Upload([](DH* h, std::string*) { h->set_test_samples(4); }), kIA);
  add("UploadDataset: num_classes -1",
      Upload([](DH* h, std::string*) { h->set_num_classes(-1); }), kIA);
  add("UploadDataset: num_classes and target_shape",
      Upload([](DH* h, std::string*) { h->add_target_shape(1); }), kIA);
  add("UploadDataset: neither num_classes nor target_shape",
      Upload([](DH* h, std::string*) { h->set_num_classes(0); }), kIA);
  add("UploadDataset: target_shape [-1]", Upload([](DH* h, std::string*) {
        h->set_num_classes(0);
        h->add_target_shape(-1);
      }),
      kIA);
  add("UploadDataset: name of 300 chars",
      Upload([](DH* h, std::string*) { h->set_name(kLongId); }), kIA);
  add("UploadDataset: payload 4 bytes short",
      Upload([](DH*, std::string* p) { p->resize(p->size() - 4); }), kIA);
  add("UploadDataset: payload 3 bytes long",
      Upload([](DH*, std::string* p) { p->append(3, '\0'); }), kIA);
  add("UploadDataset: payload with NaN",
      Upload([](DH*, std::string* p) { std::memcpy(p->data(), &kNaN, 4); }),
      kIA);
  add("UploadDataset: payload with -Inf", Upload([](DH*, std::string* p) {
        const float v = -kInf;
        std::memcpy(p->data() + 4, &v, 4);
      }),
      kIA);
  add("UploadDataset: label 7 of 2 classes", Upload([](DH*, std::string* p) {
        const float v = 7;
        std::memcpy(p->data() + p->size() - 4, &v, 4);
      }),
      kIA);
  add("UploadDataset: label 0.5", Upload([](DH*, std::string* p) {
        const float v = 0.5f;
        std::memcpy(p->data() + p->size() - 4, &v, 4);
      }),
      kIA);
  add("UploadDataset: wrong CRC-32C", Upload([](DH* h, std::string* p) {
        h->set_crc32c(server::Crc32c(*p) ^ 1);
      }),
      StatusCode::DATA_LOSS);
  {
    v1::UploadDatasetRequest h;
    h.mutable_header()->add_sample_shape(2);
    h.mutable_header()->set_num_classes(2);
    h.mutable_header()->set_num_samples(4);
    add("UploadDataset: a second header", UploadMessages({h, h}), kIA);
  }

  // --- InferenceService.Infer ---
  for (const auto& [what, id] : kBadIds) {
    add("Infer: model_id " + what,
        Infer([id = id](IR* r) { r->set_model_id(id); }), kIA);
  }
  add("Infer: unknown model", Infer([](IR* r) { r->set_model_id("nope"); }),
      kNF);
  add("Infer: top_k -1", Infer([](IR* r) { r->set_top_k(-1); }), kIA);
  add("Infer: top_k 1001", Infer([](IR* r) { r->set_top_k(1001); }), kIA);
  add("Infer: message over the size limit", Infer([](IR* r) {
        std::vector<float> big(2 * (3 << 20), 0.5f);
        *r->mutable_inputs() = Raw({3 << 20, 2}, big);
      }),
      kRE);
  add("Infer: batch too large for the activation limit", Infer([](IR* r) {
        r->set_model_id("wide");
        std::vector<float> x(2 * 512, 0.5f);
        *r->mutable_inputs() = Raw({512, 2}, x);
      }),
      kRE);

  // --- InferenceService.Sample ---
  for (const auto& [what, id] : kBadIds) {
    add("Sample: model_id " + what,
        Sample([id = id](SR* r) { r->set_model_id(id); }), kIA);
  }
  add("Sample: unknown model", Sample([](SR* r) { r->set_model_id("nope"); }),
      kNF);
  for (int count : {0, -1, 1025}) {
    add(absl::StrCat("Sample: count ", count),
        Sample([count](SR* r) { r->set_count(count); }), kIA);
  }
  for (int steps : {0, -5, 1001}) {
    add(absl::StrCat("Sample: steps ", steps),
        Sample([steps](SR* r) { r->set_steps(steps); }), kIA);
  }
  for (const auto& [what, v] : kBadFloats) {
    add("Sample: temperature " + what,
        Sample([v = v](SR* r) { r->set_temperature(v); }), kIA);
  }
  add("Sample: noise 9", Sample([](SR* r) {
        r->set_model_id("gan");
        r->set_noise(static_cast<v1::NoiseDistribution>(9));
      }),
      kIA);
  add("Sample: prime NaN", Sample([](SR* r) {
        *r->mutable_prime() = Packed({4}, {0, kNaN, 0, 0});
      }),
      kIA);
  add("Sample: prime wrong shape [3]", Sample([](SR* r) {
        *r->mutable_prime() = Packed({3}, {0, 1, 0});
      }),
      kIA);
  add("Sample: prime shape [4], 2 values", Sample([](SR* r) {
        *r->mutable_prime() = Packed({4}, {0, 1});
      }),
      kIA);
  add("Sample: prime shape [4], 15 raw bytes", Sample([](SR* r) {
        *r->mutable_prime() = Raw({4}, {0, 1, 0, 0}, -1);
      }),
      kIA);
  add("Sample: 32 x 1000 steps of 2^18 features", Sample([](SR* r) {
        r->set_model_id("wideseq");
        r->set_count(32);
        r->set_steps(1000);
      }),
      kRE);
  add("Sample: 1024 samples of a 2^17-unit model", Sample([](SR* r) {
        r->set_model_id("wide");
        r->set_count(1024);
      }),
      kRE);

  // --- InferenceService.SampleText ---
  using ST = v1::SampleTextRequest;
  for (const auto& [what, id] : kBadIds) {
    add("SampleText: model_id " + what,
        SampleText([id = id](ST* r) { r->set_model_id(id); }), kIA);
  }
  add("SampleText: unknown model",
      SampleText([](ST* r) { r->set_model_id("nope"); }), kNF);
  for (const auto& [what, prime] :
       std::vector<std::pair<std::string, std::string>>{
           {"empty", ""},
           {"1001 characters", std::string(1001, 'a')},
           {"'~' (not in the vocabulary)", "a~"},
           {"NUL", std::string("a\0b", 3)},
           {"UTF-8 \u00e9", "caf\xc3\xa9"}}) {
    add("SampleText: prime " + what,
        SampleText([prime = prime](ST* r) { r->set_prime(prime); }), kIA);
  }
  for (int length : {0, -1, 10001}) {
    add(absl::StrCat("SampleText: length ", length),
        SampleText([length](ST* r) { r->set_length(length); }), kIA);
  }
  for (const auto& [what, v] : kBadFloats) {
    add("SampleText: temperature " + what,
        SampleText([v = v](ST* r) { r->set_temperature(v); }), kIA);
  }
  add("SampleText: temperature 0",
      SampleText([](ST* r) { r->set_temperature(0); }), kIA);
  for (const char* dataset : {"mnist", "chars:devil:T=0", "chars:other"}) {
    add(absl::StrCat("SampleText: dataset ", dataset),
        SampleText([dataset](ST* r) { r->set_dataset(dataset); }), kIA);
  }
  add("SampleText: not a character model", SampleText([](ST*) {}), kFP);
  add("SampleText: a GAN", SampleText([](ST* r) { r->set_model_id("gan"); }),
      kFP);
  add("SampleText: no data set and no job on one",
      SampleText([](ST* r) { r->set_dataset(""); }), kFP);

  // --- ListDatasets has no fields: unknown ones are ignored (proto3).
  add(
      "ListDatasets: unknown field 5",
      [this]() {
        return RawCall(server_->Channel().get(),
                       "/nnlab.v1.TrainingService/ListDatasets",
                       std::string("\x28\x01", 2))
            .status;
      },
      StatusCode::OK);
  add(
      "ListDatasets: unknown field 5 (DatasetService)",
      [this]() {
        return RawCall(server_->Channel().get(),
                       "/nnlab.v1.DatasetService/ListDatasets",
                       std::string("\x28\x01", 2))
            .status;
      },
      StatusCode::OK);

  // --- Every RPC: bytes that are not a valid message of its request type.
  // gRPC answers INTERNAL before a unary or server-streaming handler runs;
  // in a client stream the sync API ends the reads, so the handler sees
  // the stream end there: UploadDataset then lacks its header, TrainStream
  // has taken no step.
  for (const char* file :
       {"nnlab/v1/model.proto", "nnlab/v1/training.proto",
        "nnlab/v1/inference.proto", "nnlab/v1/dataset.proto"}) {
    const google::protobuf::FileDescriptor* fd =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
            file);
    EXPECT_NE(fd, nullptr) << file;
    if (fd == nullptr) continue;
    for (int s = 0; s < fd->service_count(); ++s) {
      for (int m = 0; m < fd->service(s)->method_count(); ++m) {
        const auto* md = fd->service(s)->method(m);
        const std::string path =
            absl::StrCat("/", fd->service(s)->full_name(), "/", md->name());
        StatusCode code = StatusCode::INTERNAL;
        if (md->client_streaming()) {
          code = md->server_streaming() ? StatusCode::OK
                                        : StatusCode::INVALID_ARGUMENT;
        }
        add(
            absl::StrCat(md->name(), ": malformed protobuf bytes"),
            [this, path]() {
              return RawCall(server_->Channel().get(), path,
                             std::string("\x0a\xff\xff\xff\xff\x0f", 6))
                  .status;
            },
            code);
      }
    }
  }
  return cases;
}

TEST_F(BadInputTest, EveryRpcRejectsBadInputAndKeepsServing) {
  const std::vector<Case> cases = Cases();
  std::set<std::string> rpcs;
  for (const Case& tc : cases)
    rpcs.insert(tc.name.substr(0, tc.name.find(':')));
  // Every RPC of the three services appears in the matrix.
  int methods = 0;
  for (const char* file :
       {"nnlab/v1/model.proto", "nnlab/v1/training.proto",
        "nnlab/v1/inference.proto", "nnlab/v1/dataset.proto"}) {
    const auto* fd =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
            file);
    ASSERT_NE(fd, nullptr);
    for (int s = 0; s < fd->service_count(); ++s) {
      for (int m = 0; m < fd->service(s)->method_count(); ++m) {
        ++methods;
        EXPECT_TRUE(rpcs.count(fd->service(s)->method(m)->name()) > 0)
            << fd->service(s)->method(m)->name() << " has no bad-input row";
      }
    }
  }
  // DatasetService's three methods share their names (and rows) with
  // TrainingService's deprecated copies.
  EXPECT_EQ(methods, 25);
  EXPECT_EQ(rpcs.size(), 22u);
  int failures = 0;
  for (const Case& tc : cases) {
    grpc::Status s = tc.call();
    const bool ok = s.error_code() == tc.code;
    if (!ok) ++failures;
    EXPECT_EQ(s.error_code(), tc.code)
        << tc.name << ": got " << s.error_code() << " " << s.error_message();
    // gRPC's own parse failures carry no message; every nnlab error does.
    if (tc.code != StatusCode::OK && tc.code != StatusCode::INTERNAL) {
      EXPECT_FALSE(s.error_message().empty()) << tc.name;
    }
    // Still healthy, still answering, and no model changed.
    ASSERT_EQ(HealthCheck(server_->Channel()), 1) << "after " << tc.name;
    v1::InferResponse probe = ProbeInfer();
    ASSERT_EQ(probe.outputs().data_size(), baseline_.outputs().data_size())
        << "after " << tc.name;
    for (int i = 0; i < probe.outputs().data_size(); ++i) {
      ASSERT_EQ(probe.outputs().data(i), baseline_.outputs().data(i))
          << "after " << tc.name;
    }
  }
  std::printf("bad-input matrix: %zu cases over %zu RPCs, %d wrong\n",
              cases.size(), rpcs.size(), failures);
}

// Field names in messages: a client can tell which field to fix.
TEST_F(BadInputTest, MessagesNameTheField) {
  struct Named {
    std::function<grpc::Status()> call;
    std::string field;
  };
  const std::vector<Named> named = {
      {Create([](v1::CreateModelRequest* r) {
         r->mutable_spec()->mutable_layers(2)->mutable_dense()->set_units(-3);
       }),
       "layers[2].dense.units"},
      {Create([](v1::CreateModelRequest* r) {
         r->mutable_spec()->add_layers()->mutable_dropout()->set_keep_prob(
             kNaN);
       }),
       "layers[3].dropout.keep_prob"},
      {Step([](v1::TrainStepRequest* r) {
         r->mutable_optimizer()->set_learning_rate(kInf);
       }),
       "optimizer.learning_rate"},
      {Step([](v1::TrainStepRequest* r) {
         *r->mutable_inputs() = Raw({2, 2}, {0, 1, 1});
       }),
       "inputs.raw_data"},
      {Step([](v1::TrainStepRequest* r) {
         *r->mutable_targets() = Packed({2}, {0});
       }),
       "targets.data"},
      {Infer([](v1::InferRequest* r) {
         *r->mutable_inputs() = Packed({-1, 2}, {0, 1});
       }),
       "inputs.shape[0]"},
      {Infer([](v1::InferRequest* r) { r->set_model_id("../x"); }), "model_id"},
      {Start([](v1::JobSpec* s) { s->mutable_optimizer()->set_beta1(kNaN); }),
       "spec.optimizer.beta1"},
      {Upload(
           [](v1::DatasetHeader* h, std::string*) { h->set_num_samples(-1); }),
       "header.num_samples"},
      {Sample([](v1::SampleRequest* r) { r->set_temperature(kNaN); }),
       "temperature"},
  };
  for (const Named& n : named) {
    grpc::Status s = n.call();
    EXPECT_NE(s.error_message().find(n.field), std::string::npos)
        << n.field << " not in \"" << s.error_message() << "\"";
  }
}

// Ids echoed in messages are escaped: no raw control byte goes back to the
// client, and a huge id comes back cut short.
TEST_F(BadInputTest, MessagesEscapeIds) {
  const std::string nul_id("a\0b\n", 4);
  const std::vector<std::function<grpc::Status(const std::string&)>> calls = {
      [this](const std::string& id) {
        v1::GetModelRequest req;
        req.set_model_id(id);
        v1::Model resp;
        auto ctx = Ctx();
        return c_->models->GetModel(ctx.get(), req, &resp);
      },
      [this](const std::string& id) {
        v1::GetJobRequest req;
        req.set_job_id(id);
        v1::Job resp;
        auto ctx = Ctx();
        return c_->training->GetJob(ctx.get(), req, &resp);
      },
      [this](const std::string& id) {
        v1::ListModelsRequest req;
        req.set_page_token(id);
        v1::ListModelsResponse resp;
        auto ctx = Ctx();
        return c_->models->ListModels(ctx.get(), req, &resp);
      },
  };
  for (const auto& call : calls) {
    grpc::Status s = call(nul_id);
    ASSERT_EQ(s.error_code(), StatusCode::INVALID_ARGUMENT)
        << s.error_message();
    EXPECT_EQ(s.error_message().find('\0'), std::string::npos);
    EXPECT_EQ(s.error_message().find('\n'), std::string::npos);
    EXPECT_NE(s.error_message().find("\"a\\x00b\\x0a\""), std::string::npos)
        << s.error_message();
    grpc::Status big = call(std::string(5 << 20, 'z'));
    ASSERT_EQ(big.error_code(), StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(big.error_message().size(), 300u);
    EXPECT_NE(big.error_message().find("(5242880 bytes)"), std::string::npos)
        << big.error_message();
  }
}

}  // namespace
}  // namespace nnlab::testing

// The built-in character corpus ("chars:devil:T=<steps>", Debian's
// dict-devil): vocabulary, shapes, targets = inputs shifted by one, the
// fixed split and the missing-package error; then over loopback a char LSTM
// job with the per-step loss and SampleText with its bad inputs.
#include "server/char_datasets.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {
namespace {

// Window k of `data` (gathered alone) as characters: inputs and targets.
void Decode(const Dataset& data, const std::string& vocabulary, int64_t k,
            std::string* in, std::string* next) {
  Tensor x, y;
  data.Gather({k}, &x, &y);
  const int64_t t = x.dim(1), v = x.dim(2);
  ASSERT_EQ(v, static_cast<int64_t>(vocabulary.size()));
  in->clear();
  next->clear();
  for (int64_t s = 0; s < t; ++s) {
    int hot = -1, ones = 0;
    for (int64_t c = 0; c < v; ++c) {
      if (x[s * v + c] == 1.0f) {
        hot = static_cast<int>(c);
        ++ones;
      } else {
        ASSERT_EQ(x[s * v + c], 0.0f);
      }
    }
    ASSERT_EQ(ones, 1) << "step " << s;
    in->push_back(vocabulary[hot]);
    const float target = y[s];
    ASSERT_EQ(target, std::floor(target));
    ASSERT_GE(target, 0);
    ASSERT_LT(target, v);
    next->push_back(vocabulary[static_cast<int>(target)]);
  }
}

TEST(CharDatasetsTest, VocabularyShapesShiftedTargetsAndSplit) {
  auto corpus = server::CharCorpusFor("chars:devil");
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  const std::string& text = (*corpus)->text();
  ASSERT_EQ(text.size(), 383656u);  // Debian 12's dict-devil 1.0-13.1.
  auto pair = server::MakeCharBuiltin("chars:devil:T=16");
  ASSERT_TRUE(pair.ok()) << pair.status();
  const v1::DatasetInfo& info = (*pair)->info;
  // The vocabulary: each byte of the text once, in increasing order.
  std::string expected;
  for (int b = 0; b < 256; ++b) {
    if (text.find(static_cast<char>(b)) != std::string::npos) {
      expected.push_back(static_cast<char>(b));
    }
  }
  EXPECT_EQ(info.vocabulary(), expected);
  EXPECT_EQ(info.vocabulary().size(), 85u);
  EXPECT_EQ(info.vocabulary().front(), '\n');
  EXPECT_EQ(info.num_classes(), 85);
  EXPECT_EQ(info.dataset_id(), "chars:devil:T=16");
  const Dataset& train = *(*pair)->train;
  const Dataset& test = *(*pair)->test;
  EXPECT_EQ(train.sample_shape(), (Shape{16, 85}));
  EXPECT_EQ(train.target_shape(), (Shape{16}));
  EXPECT_EQ(train.num_classes(), 0);  // Per-step targets.
  const int64_t split = 383656 * 9 / 10;
  EXPECT_EQ(train.size(), (split - 1) / 16);
  EXPECT_EQ(test.size(), (383656 - split - 1) / 16);
  EXPECT_EQ(info.train_samples(), train.size());
  EXPECT_EQ(info.test_samples(), test.size());

  // Window k is text[k T, k T + T) and its targets the text one further.
  std::string in, next, in2, next2;
  for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{777}, train.size() - 1}) {
    Decode(train, info.vocabulary(), k, &in, &next);
    EXPECT_EQ(in, text.substr(k * 16, 16)) << k;
    EXPECT_EQ(next, text.substr(k * 16 + 1, 16)) << k;
    EXPECT_EQ(next.substr(0, 15), in.substr(1)) << k;
  }
  // The test windows start at the split, after every training target.
  EXPECT_LE(train.size() * 16 + 1, split);
  Decode(test, info.vocabulary(), 0, &in, &next);
  EXPECT_EQ(in, text.substr(split, 16));
  Decode(test, info.vocabulary(), test.size() - 1, &in, &next);
  EXPECT_EQ(next, text.substr(split + (test.size() - 1) * 16 + 1, 16));

  // Deterministic: another instance gathers the same batches.
  auto again = server::MakeCharBuiltin("chars:devil:T=16");
  ASSERT_TRUE(again.ok());
  Tensor x1, y1, x2, y2;
  train.Gather({5, 3, 900}, &x1, &y1);
  (*again)->train->Gather({5, 3, 900}, &x2, &y2);
  EXPECT_EQ(x1.shape(), (Shape{3, 16, 85}));
  EXPECT_EQ(y1.shape(), (Shape{3, 16}));
  EXPECT_EQ(std::vector<float>(x1.data(), x1.data() + x1.size()),
            std::vector<float>(x2.data(), x2.data() + x2.size()));
  EXPECT_EQ(std::vector<float>(y1.data(), y1.data() + y1.size()),
            std::vector<float>(y2.data(), y2.data() + y2.size()));

  EXPECT_EQ((*server::MakeCharBuiltin("chars:devil"))->info.dataset_id(),
            "chars:devil:T=64");
  EXPECT_TRUE(server::MakeCharBuiltin("chars:devil:T=1000").ok());
  for (const char* bad : {"chars", "chars:", "chars:devil:T=0",
                          "chars:devil:T=1001", "chars:devil:T=", "chars:x",
                          "chars:devil:T=8x", "chars:devil:steps=8"}) {
    absl::Status s = server::MakeCharBuiltin(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("chars:devil:T=<steps>"), std::string::npos)
        << s.message();
  }
}

TEST(CharDatasetsTest, MissingPackageIsNotFoundNamingIt) {
  ASSERT_EQ(setenv("NNLAB_DEVIL_DICT", "/nonexistent/devil.dict.dz", 1), 0);
  absl::Status s = server::MakeCharBuiltin("chars:devil:T=8").status();
  const bool listed = !server::CharBuiltinInfos().empty();
  unsetenv("NNLAB_DEVIL_DICT");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find("apt-get install dict-devil"), std::string::npos)
      << s.message();
  EXPECT_FALSE(listed);
  EXPECT_TRUE(server::MakeCharBuiltin("chars:devil:T=8").ok());
}

v1::ModelSpec CharSpec(int64_t steps, int64_t units, int64_t outputs) {
  v1::ModelSpec spec;
  spec.set_name("char-lstm");
  spec.add_input_shape(steps);
  spec.add_input_shape(85);
  v1::LayerSpec* lstm = spec.add_layers();
  lstm->mutable_lstm()->set_units(units);
  lstm->mutable_lstm()->set_return_sequences(true);
  spec.add_layers()->mutable_time_dense()->set_units(outputs);
  spec.set_loss(v1::LOSS_SEQUENCE_SOFTMAX_CROSS_ENTROPY);
  spec.set_init(v1::INIT_GLOROT);
  spec.set_seed(1);
  return spec;
}

grpc::StatusCode SampleCode(Client& c, const v1::SampleTextRequest& req,
                            std::string* message = nullptr) {
  v1::SampleTextResponse resp;
  auto ctx = Ctx();
  grpc::Status s = c.inference->SampleText(ctx.get(), req, &resp);
  if (message != nullptr) *message = s.error_message();
  return s.error_code();
}

TEST(CharDatasetsTest, CharJobTrainsAndSampleTextRefusesBadInput) {
  TestServer server;
  Client c = server.MakeClient();
  {
    v1::ListDatasetsResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(
        c.training->ListDatasets(ctx.get(), v1::ListDatasetsRequest(), &resp)
            .ok());
    bool found = false;
    for (const v1::DatasetInfo& d : resp.datasets()) {
      if (d.dataset_id() != "chars:devil:T=64") continue;
      found = true;
      EXPECT_EQ(d.vocabulary().size(), 85u);
      EXPECT_EQ(d.num_classes(), 85);
      EXPECT_EQ(d.target_shape_size(), 1);
    }
    EXPECT_TRUE(found);
  }
  CreateModel(c, CharSpec(8, 16, 85), "chars");
  // Before any job, the vocabulary must be named.
  v1::SampleTextRequest req;
  req.set_model_id("chars");
  req.set_prime("THE ");
  req.set_length(20);
  req.set_temperature(1);
  std::string message;
  EXPECT_EQ(SampleCode(c, req, &message), grpc::StatusCode::FAILED_PRECONDITION)
      << message;

  v1::JobSpec js;
  js.set_model_id("chars");
  js.set_dataset("chars:devil:T=8");
  js.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
  js.mutable_optimizer()->set_learning_rate(0.01f);
  js.set_batch_size(16);
  js.set_max_steps(20);
  v1::Job done = WaitForJob(c, StartJob(c, js).job_id());
  ASSERT_EQ(done.state(), v1::JOB_STATE_COMPLETED) << done.failure_reason();
  // Loss per character, accuracy over (window, step) pairs.
  EXPECT_GT(done.last_eval().loss(), 0);
  EXPECT_LT(done.last_eval().loss(), std::log(85.0) + 0.5);
  EXPECT_GT(done.last_eval().accuracy(), 0);
  EXPECT_LT(done.last_eval().accuracy(), 1);

  v1::SampleTextResponse resp;
  {
    auto ctx = Ctx();
    grpc::Status s = c.inference->SampleText(ctx.get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(resp.text().size(), 20u);
  EXPECT_EQ(resp.dataset(), "chars:devil:T=8");
  EXPECT_EQ(resp.weights_step(), 20);

  // Bad input: each a clear status.
  auto with = [&](auto edit) {
    v1::SampleTextRequest r = req;
    edit(&r);
    return SampleCode(c, r, &message);
  };
  EXPECT_EQ(with([](auto* r) { r->set_prime("100% ~"); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(message.find("not in the vocabulary"), std::string::npos)
      << message;
  EXPECT_EQ(with([](auto* r) { r->set_prime(""); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_prime(std::string(1001, 'a')); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_length(0); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_length(10001); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_temperature(0); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_temperature(NAN); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_dataset("mnist"); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_dataset("chars:devil:T=0"); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(with([](auto* r) { r->set_model_id("nope"); }),
            grpc::StatusCode::NOT_FOUND);
  CreateModel(c, MlpSpec(784, 10, 10), "mlp");
  EXPECT_EQ(with([](auto* r) {
              r->set_model_id("mlp");
              r->set_dataset("chars:devil");
            }),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(message.find("not a character model"), std::string::npos)
      << message;

  // Jobs whose model does not fit the per-step targets are refused.
  CreateModel(c, CharSpec(8, 16, 40), "narrow");
  v1::StartJobRequest sreq;
  *sreq.mutable_spec() = js;
  sreq.mutable_spec()->set_model_id("narrow");
  v1::Job ignored;
  auto ctx = Ctx();
  grpc::Status s = c.training->StartJob(ctx.get(), sreq, &ignored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("85 classes"), std::string::npos)
      << s.error_message();
  sreq.mutable_spec()->set_model_id("chars");
  sreq.mutable_spec()->set_dataset("mnist");
  auto ctx2 = Ctx();
  s = c.training->StartJob(ctx2.get(), sreq, &ignored);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  // The per-step loss needs [T, classes] outputs at build time.
  v1::ModelSpec flat = MlpSpec(784, 10, 10);
  flat.set_loss(v1::LOSS_SEQUENCE_SOFTMAX_CROSS_ENTROPY);
  v1::CreateModelRequest creq;
  *creq.mutable_spec() = flat;
  v1::Model m;
  auto ctx3 = Ctx();
  s = c.models->CreateModel(ctx3.get(), creq, &m);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace nnlab::testing

// Writes the seed corpora of the fuzz targets:
//   fuzz_make_corpus <source_dir> <out_dir>
// makes <out_dir>/{requests,spec,readers,upload}/ with valid inputs: the
// model specs of examples/*.textproto (text and JSON), valid requests for
// every fuzzed RPC, and model files, data sets, job records, event logs
// and checkpoints written by the real server code.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/train/run_state.h"
#include "core/train/trainer.h"
#include "fuzz.pb.h"  // Generated from tests/fuzz/fuzz.proto.
#include "google/protobuf/text_format.h"
#include "nnlab/v1/inference.pb.h"
#include "nnlab/v1/model.pb.h"
#include "nnlab/v1/training.pb.h"
#include "server/convert.h"
#include "server/models.h"
#include "server/storage.h"
#include "server/storage.pb.h"
#include "server/weights.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/proto_mutator.h"

namespace nnlab::fuzz {
namespace {

namespace v1 = ::nnlab::v1;

int written = 0;

void Write(const std::string& dir, const std::string& name,
           const std::string& bytes) {
  WriteFileOrDie(absl::StrCat(dir, "/", name), bytes);
  ++written;
}

template <typename M>
M Text(const std::string& text) {
  M m;
  if (!google::protobuf::TextFormat::ParseFromString(text, &m)) {
    fprintf(stderr, "bad seed text: %s\n", text.c_str());
    abort();
  }
  return m;
}

// Request seeds: selector byte (fuzz_requests.cc's Rpc order) + message.
void Request(const std::string& dir, const std::string& name, uint8_t rpc,
             const google::protobuf::Message& m) {
  Write(dir, name, std::string(1, char(rpc)) + m.SerializeAsString());
}

v1::Tensor MakeTensor(std::initializer_list<int64_t> shape, int seed) {
  v1::Tensor t;
  int64_t n = 1;
  for (int64_t d : shape) {
    t.add_shape(d);
    n *= d;
  }
  for (int64_t i = 0; i < n; ++i) t.add_data(0.1f * float((i + seed) % 7));
  return t;
}

// The fixture models as the server stores them (with real weights).
v1::ModelFile FixtureFile(const std::string& id, const std::string& tmp) {
  // A fresh directory per call: the same fixture is asked for more than once.
  static int calls = 0;
  server::ModelRegistry registry(
      absl::StrCat(tmp, "/models-", id, "-", ++calls), server::Limits(), 10);
  if (absl::Status s = registry.Load(); !s.ok()) {
    fprintf(stderr, "fixture registry: %s\n", s.ToString().c_str());
    abort();
  }
  v1::CreateModelRequest req;
  req.set_model_id(id);
  if (id == "gan") {
    *req.mutable_gan() = Text<v1::GanSpec>(kGanSpec);
  } else {
    *req.mutable_spec() = Text<v1::ModelSpec>(id == "mlp"   ? kMlpSpec
                                              : id == "cnn" ? kCnnSpec
                                                            : kRnnSpec);
  }
  auto e = registry.Create(req);
  if (!e.ok()) {
    fprintf(stderr, "fixture model %s: %s\n", id.c_str(),
            e.status().ToString().c_str());
    abort();
  }
  return (*e)->File(/*raw=*/false);
}

void Specs(const std::string& src, const std::string& dir) {
  for (const std::string& path : ExampleSpecs(src)) {
    const std::string text = ReadFileOrDie(path);
    const std::string base = path.substr(path.rfind('/') + 1);
    Write(dir, base, text);
    v1::ModelSpec spec = Text<v1::ModelSpec>(text);
    Write(dir, base + ".json", SerializeAs(Format::kJson, spec));
  }
  for (const char* text : {kMlpSpec, kCnnSpec, kRnnSpec, kMnistSpec}) {
    v1::ModelSpec spec = Text<v1::ModelSpec>(text);
    Write(dir, spec.name() + ".textproto", text);
    Write(dir, spec.name() + ".json", SerializeAs(Format::kJson, spec));
  }
}

void Requests(const std::string& src, const std::string& dir,
              const std::string& tmp) {
  int i = 0;
  for (const std::string& path : ExampleSpecs(src)) {
    v1::CreateModelRequest req;
    req.set_model_id(absl::StrCat("new", i));
    *req.mutable_spec() = Text<v1::ModelSpec>(ReadFileOrDie(path));
    Request(dir, absl::StrCat("create-", i++), kCreateModel, req);
  }
  {
    v1::CreateModelRequest req;
    req.set_model_id("newgan");
    *req.mutable_gan() = Text<v1::GanSpec>(kGanSpec);
    Request(dir, "create-gan", kCreateModel, req);
    req.set_model_id("");
    *req.mutable_spec() = Text<v1::ModelSpec>(kCnnSpec);
    Request(dir, "create-cnn", kCreateModel, req);
  }
  for (const char* id : {"mlp", "cnn", "rnn", "gan"}) {
    v1::GetModelRequest get;
    get.set_model_id(id);
    Request(dir, absl::StrCat("get-", id), kGetModel, get);
    v1::ExportModelRequest exp;
    exp.set_model_id(id);
    Request(dir, absl::StrCat("export-", id), kExportModel, exp);
    v1::ImportModelRequest imp;
    imp.set_model_id(absl::StrCat("imported-", id));
    *imp.mutable_file() = FixtureFile(id, tmp);
    Request(dir, absl::StrCat("import-", id), kImportModel, imp);
    v1::DeleteModelRequest del;
    del.set_model_id(id);
    Request(dir, absl::StrCat("delete-", id), kDeleteModel, del);
  }
  Request(dir, "list-models", kListModels,
          Text<v1::ListModelsRequest>("page_size: 2 page_token: \"cnn\""));
  Request(dir, "start-job-mnist", kStartJob, Text<v1::StartJobRequest>(R"pb(
            spec {
              model_id: "mnist"
              dataset: "mnist"
              epochs: 1
              batch_size: 64
              optimizer { kind: OPTIMIZER_ADAM learning_rate: 0.001 }
              max_train_samples: 100
              eval_every_steps: 2
            })pb"));
  Request(dir, "start-job-upload", kStartJob, Text<v1::StartJobRequest>(R"pb(
            spec {
              model_id: "mlp"
              dataset: "DS"
              batch_size: 2
              optimizer { kind: OPTIMIZER_MOMENTUM learning_rate: 0.1 }
            })pb"));
  Request(dir, "start-job-gan", kStartJob, Text<v1::StartJobRequest>(R"pb(
            spec {
              model_id: "gan"
              dataset: "DS"
              sample_shape: [ 4 ]
              gan_d_steps: 2
            })pb"));
  Request(dir, "get-job", kGetJob, Text<v1::GetJobRequest>("job_id: \"JOB\""));
  Request(
      dir, "list-jobs", kListJobs,
      Text<v1::ListJobsRequest>("model_id: \"mlp\" state: JOB_STATE_QUEUED"));
  Request(dir, "cancel-job", kCancelJob,
          Text<v1::CancelJobRequest>("job_id: \"JOB\""));
  Request(dir, "pause-job", kPauseJob,
          Text<v1::PauseJobRequest>("job_id: \"JOB\""));
  Request(dir, "resume-job", kResumeJob,
          Text<v1::ResumeJobRequest>("job_id: \"JOB\""));
  {
    v1::TrainStepRequest ts;
    ts.set_model_id("cnn");
    *ts.mutable_inputs() = MakeTensor({2, 1, 6, 6}, 1);
    *ts.mutable_targets() = Text<v1::Tensor>("shape: 2 data: [0, 2]");
    ts.set_layer_stats(true);
    ts.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
    Request(dir, "train-step-cnn", kTrainStep, ts);
    ts.set_model_id("rnn");
    *ts.mutable_inputs() = MakeTensor({2, 5, 3}, 2);
    *ts.mutable_targets() = MakeTensor({2, 5, 3}, 0);
    ts.mutable_optimizer()->set_kind(v1::OPTIMIZER_RMSPROP);
    Request(dir, "train-step-rnn", kTrainStep, ts);
    ts.set_model_id("mlp");
    *ts.mutable_inputs() = MakeTensor({3, 4}, 3);
    *ts.mutable_targets() = Text<v1::Tensor>("shape: 3 data: [0, 1, 2]");
    ts.clear_optimizer();
    Request(dir, "train-step-mlp", kTrainStep, ts);
  }
  Request(dir, "list-datasets", kListDatasets, v1::ListDatasetsRequest());
  Request(dir, "delete-dataset", kDeleteDataset,
          Text<v1::DeleteDatasetRequest>("dataset_id: \"DS\""));
  {
    v1::InferRequest inf;
    inf.set_model_id("mlp");
    *inf.mutable_inputs() = MakeTensor({2, 4}, 4);
    inf.set_top_k(2);
    Request(dir, "infer-mlp", kInfer, inf);
    inf.set_model_id("cnn");
    *inf.mutable_inputs() = MakeTensor({1, 1, 6, 6}, 5);
    inf.set_raw_output(true);
    Request(dir, "infer-cnn", kInfer, inf);
    inf.set_model_id("rnn");
    *inf.mutable_inputs() = MakeTensor({1, 5, 3}, 6);
    Request(dir, "infer-rnn", kInfer, inf);
    inf.set_model_id("gan");
    *inf.mutable_inputs() = MakeTensor({2, 3}, 7);
    Request(dir, "infer-gan", kInfer, inf);
  }
  Request(dir, "sample-gan", kSample,
          Text<v1::SampleRequest>(
              "model_id: \"gan\" count: 3 seed: 7 noise: NOISE_UNIFORM"));
  Request(dir, "sample-rnn", kSample,
          Text<v1::SampleRequest>(
              "model_id: \"rnn\" count: 2 steps: 4 temperature: 0.5 "
              "prime { shape: 3 data: [1, 0, 0] }"));
  Request(dir, "sample-text", kSampleText,
          Text<v1::SampleTextRequest>(
              "model_id: \"rnn\" dataset: \"chars:devil:T=8\" prime: \"THE \" "
              "length: 20 temperature: 0.8 seed: 3"));
}

void Readers(const std::string& dir, const std::string& tmp) {
  // Selector, flags (bit 0: frame), split; then the payload(s).
  auto seed = [&](const std::string& name, uint8_t reader, uint8_t flags,
                  uint8_t split, const std::string& payload) {
    Write(dir, name,
          std::string{char(reader), char(flags), char(split)} + payload);
  };
  // IDX: 3 images of 4x4 and their labels.
  std::string images = std::string("\0\0\x08\x03", 4) +
                       std::string("\0\0\0\x03\0\0\0\x04\0\0\0\x04", 12);
  for (int i = 0; i < 48; ++i) images.push_back(char(i * 5));
  const std::string labels =
      std::string("\0\0\x08\x01\0\0\0\x03", 8) + std::string("\x01\x07\x09");
  const size_t total = images.size() + labels.size();
  seed("idx", 0, 0, uint8_t(255 * images.size() / total + 1), images + labels);
  // Model files.
  for (const char* id : {"mlp", "cnn", "gan"}) {
    server::StoredModel stored;
    stored.set_model_id(id);
    *stored.mutable_file() = FixtureFile(id, tmp);
    seed(absl::StrCat("model-", id), 1, 1, 0, stored.SerializeAsString());
    if (std::string(id) == "mlp") {
      seed("model-mlp-frame", 1, 0, 0,
           server::Frame(stored.SerializeAsString()));
    }
  }
  // A data set file.
  {
    server::StoredDataset stored;
    v1::DatasetHeader* h = stored.mutable_header();
    h->add_sample_shape(2);
    h->set_num_classes(2);
    h->set_num_samples(3);
    h->set_test_samples(1);
    std::string payload;
    for (float v : {0.5f, 1.f, -1.f, 2.f, 0.f, 3.f, 1.f, 0.f, 1.f}) {
      payload.append(reinterpret_cast<const char*>(&v), 4);
    }
    h->set_crc32c(server::Crc32c(payload));
    stored.mutable_info()->set_dataset_id("ds-000000000001");
    stored.set_payload(payload);
    seed("dataset", 2, 1, 0, stored.SerializeAsString());
  }
  // A job record and its events log.
  for (const char* state :
       {"JOB_STATE_RUNNING", "JOB_STATE_COMPLETED", "JOB_STATE_PAUSED"}) {
    server::StoredJob job = Text<server::StoredJob>(absl::StrCat(
        "job { job_id: \"j-1\" state: ", state,
        " spec { model_id: \"m\" dataset: \"mnist\" } step: 4 "
        "checkpoint_step: 2 total_steps: 10 } base_trained_steps: 1"));
    const std::string record = server::Frame(job.SerializeAsString());
    std::string log;
    for (int step = 1; step <= 4; ++step) {
      v1::MetricEvent e;
      e.set_step(step);
      e.set_phase(v1::PHASE_TRAIN);
      e.set_loss(1.0f / float(step));
      log += server::Frame(e.SerializeAsString());
    }
    seed(absl::StrCat("job-", state), 3, 0,
         uint8_t(255 * record.size() / (record.size() + log.size()) + 1),
         record + log);
  }
  // A checkpoint of the CNN after one Adam step.
  {
    v1::ModelSpec proto = Text<v1::ModelSpec>(kCnnSpec);
    auto spec = server::ModelSpecFromProto(proto, "spec", server::Limits());
    auto model = Model::Build(*spec);
    TrainOptions opts;
    opts.optimizer.kind = OptimizerKind::kAdam;
    auto trainer = Trainer::Create(model->get(), opts);
    Tensor x(Shape{2, 1, 6, 6}), y(Shape{2});
    for (int64_t i = 0; i < x.size(); ++i) x[i] = 0.2f * float(i % 3);
    y[0] = 1;
    y[1] = 0;
    StepStats stats;
    if (!(*trainer)->TrainStep(x, y, false, &stats).ok()) abort();
    server::StoredCheckpoint ckpt;
    ckpt.set_job_id("j-1");
    *ckpt.mutable_model()->mutable_spec() = proto;
    // Where a run would be after that step.
    RunState state = RunState::Capture(trainer->get());
    state.step = 1;
    state.batch_in_epoch = 1;
    state.optimizer_step = 1;
    server::RunStateToProto(state, /*trained_steps=*/1, &ckpt);
    // flags: frame + Adam (7 = 1 + 6).
    seed("checkpoint-adam", 4, 1 | (6 << 1), 0, ckpt.SerializeAsString());
  }
}

void Uploads(const std::string& dir) {
  UploadSequence seq = Text<UploadSequence>(R"pb(
    messages {
      header {
        name: "xor"
        sample_shape: 2
        num_classes: 2
        num_samples: 4
        test_samples: 1
      }
    }
    fix_crc: true
  )pb");
  std::string payload;
  for (float v : {0.f, 0.f, 0.f, 1.f, 1.f, 0.f, 1.f, 1.f, 0.f, 1.f, 1.f, 0.f}) {
    payload.append(reinterpret_cast<const char*>(&v), 4);
  }
  seq.add_messages()->set_chunk(payload.substr(0, 20));
  seq.add_messages()->set_chunk(payload.substr(20));
  Write(dir, "upload-classes", seq.SerializeAsString());
  UploadSequence reg = Text<UploadSequence>(R"pb(
    messages {
      header {
        name: "regression"
        sample_shape: [ 2, 2 ]
        target_shape: 3
        num_samples: 5
      }
    }
    fix_crc: true
    pad: true
  )pb");
  Write(dir, "upload-regression-padded", reg.SerializeAsString());
  seq.set_cancel(true);
  Write(dir, "upload-cancelled", seq.SerializeAsString());
}

}  // namespace
}  // namespace nnlab::fuzz

// The mutator (linked for SerializeAs) calls libFuzzer's mutator, which
// this program, not being a fuzzer, does not link; it never mutates.
extern "C" size_t LLVMFuzzerMutate(uint8_t*, size_t size, size_t) {
  return size;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <source_dir> <out_dir>\n", argv[0]);
    return 2;
  }
  nnlab::fuzz::QuietLogs();
  const std::string src = argv[1], out = argv[2];
  for (const char* sub : {"", "/requests", "/spec", "/readers", "/upload"}) {
    mkdir((out + sub).c_str(), 0755);
  }
  const std::string tmp = nnlab::fuzz::MakeTempDir("corpus");
  nnlab::fuzz::Specs(src, out + "/spec");
  nnlab::fuzz::Requests(src, out + "/requests", tmp);
  nnlab::fuzz::Readers(out + "/readers", tmp);
  nnlab::fuzz::Uploads(out + "/upload");
  printf("wrote %d seeds under %s\n", nnlab::fuzz::written, out.c_str());
  return 0;
}

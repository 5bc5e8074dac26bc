// Fuzzes every reader of files: the IDX data set reader (core/data/dataset.h)
// and what nnlabd reads back from its data directory (server/storage.h
// records): model files (ModelRegistry::Load), uploaded data sets
// (DatasetRegistry::Load + Get), job records with their event logs
// (JobManager::Start) and checkpoints (restored the way a resumed job
// restores them: weights, optimizer state, trainer position, RNG).
//
// Input: byte 0 picks the reader, byte 1 holds flags (bit 0: frame the
// payload with a valid header and CRC so the fuzzer reaches the parsers
// behind the checksum; bits 1-3: optimizer of a checkpoint), byte 2 splits
// the rest between two files where a reader takes two.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "core/train/run_state.h"
#include "core/train/trainer.h"
#include "google/protobuf/text_format.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/models.h"
#include "server/storage.h"
#include "server/storage.pb.h"
#include "server/weights.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/proto_mutator.h"

namespace nnlab::fuzz {
namespace {

namespace v1 = ::nnlab::v1;

enum Reader : uint8_t {
  kIdx,
  kModelFile,
  kDatasetFile,
  kJobFiles,
  kCheckpoint,
  kNumReaders
};

struct Input {
  Reader reader;
  bool frame;
  int optimizer;
  std::string first, second;  // `second` only for two-file readers.
};

Input Split(const uint8_t* data, size_t size) {
  Input in;
  in.reader = static_cast<Reader>(data[0] % kNumReaders);
  in.frame = data[1] & 1;
  in.optimizer = 1 + (data[1] >> 1) % 7;
  const std::string rest(reinterpret_cast<const char*>(data) + 3, size - 3);
  const size_t cut = rest.size() * data[2] / 255;
  if (in.reader == kIdx || in.reader == kJobFiles) {
    in.first = rest.substr(0, cut);
    in.second = rest.substr(cut);
  } else {
    in.first = rest;
  }
  return in;
}

std::string MaybeFrame(const std::string& payload, bool frame) {
  return frame ? server::Frame(payload) : payload;
}

const std::string& Dir() {
  static const std::string* dir = new std::string(MakeTempDir("readers"));
  return *dir;
}

void ReadIdx(const Input& in) {
  const std::string images = Dir() + "/images", labels = Dir() + "/labels";
  WriteFileOrDie(images, in.first);
  WriteFileOrDie(labels, in.second);
  auto data = LoadIdx(images, labels, 10);
  if (!data.ok()) return;
  ImageDataset* d = data->get();
  if (d->size() == 0) return;
  Tensor x, y;
  const int64_t idx[] = {0, d->size() - 1};
  d->Gather(idx, &x, &y);
  auto slice = d->Slice(0, d->size());
  (void)slice;
}

void ReadModelFile(const Input& in) {
  const std::string dir = Dir() + "/models";
  ClearDir(dir);
  server::MakeDirs(dir).IgnoreError();
  WriteFileOrDie(dir + "/m.model", MaybeFrame(in.first, in.frame));
  server::ModelRegistry registry(dir, FuzzLimits(), 10);
  if (!registry.Load().ok()) return;
  for (const auto& e : registry.List()) {
    (void)e->Info();
    (void)e->File(/*raw=*/true);
    for (server::ModelPart part :
         {server::ModelPart::kMain, server::ModelPart::kGenerator,
          server::ModelPart::kDiscriminator}) {
      if ((part == server::ModelPart::kMain) == e->is_gan()) continue;
      auto model = e->Instantiate(part);
      if (!model.ok()) continue;
      const Shape& in_shape = (*model)->input_shape();
      if (NumElements(in_shape) > 4096) continue;
      Shape s{1};
      for (int64_t d : in_shape) s.push_back(d);
      Tensor x(s);
      x.SetZero();
      e->WithInferenceModel(part, [&](Model* m, int64_t) {
         if (m->CheckInput(x).ok()) m->Forward(x, Mode::kEval);
         return absl::OkStatus();
       }).IgnoreError();
    }
  }
}

void ReadDatasetFile(const Input& in) {
  const std::string dir = Dir() + "/datasets";
  ClearDir(dir);
  server::MakeDirs(dir).IgnoreError();
  WriteFileOrDie(dir + "/ds-000000000001.dataset",
                 MaybeFrame(in.first, in.frame));
  server::DatasetRegistry registry(Dir() + "/no-builtin", dir, int64_t{1} << 20,
                                   FuzzLimits());
  if (!registry.Load().ok()) return;
  for (const v1::DatasetInfo& info : registry.List()) {
    if (info.builtin()) continue;
    auto pair = registry.Get(info.dataset_id());
    if (!pair.ok()) continue;
    const Dataset* train = (*pair)->train.get();
    if (train == nullptr || train->size() == 0) continue;
    Tensor x, y;
    const int64_t idx[] = {0, train->size() - 1};
    train->Gather(idx, &x, &y);
  }
}

void ReadJobFiles(const Input& in) {
  const std::string dir = Dir() + "/jobs";
  ClearDir(dir);
  server::MakeDirs(dir).IgnoreError();
  // The record names its job; its events log and checkpoint are found by
  // that id, so the fuzzer's id "j-1" gets the second file as its log.
  WriteFileOrDie(dir + "/j-1.job", MaybeFrame(in.first, in.frame));
  WriteFileOrDie(dir + "/j-1.events", in.second);
  server::ModelRegistry models(Dir() + "/job-models", FuzzLimits(), 10);
  server::DatasetRegistry datasets(
      Dir() + "/no-builtin", Dir() + "/job-datasets", 1 << 20, FuzzLimits());
  server::JobManagerOptions o;
  o.dir = dir;
  server::JobManager jobs(o, &models, &datasets);
  if (jobs.Start().ok()) {
    for (const v1::Job& j : jobs.List("", v1::JOB_STATE_UNSPECIFIED)) {
      server::Watcher::Options wo;
      auto w = jobs.Watch(j.job_id(), wo);
      if (!w.ok()) continue;
      v1::MetricEvent e;
      for (int i = 0; i < 64; ++i) {
        if ((*w)->Next(absl::ZeroDuration(), &e) !=
            server::Watcher::Result::kEvent) {
          break;
        }
      }
    }
  }
  jobs.Shutdown();
}

// The model checkpoints are restored into (the checkpoint's own spec is
// not trusted by the server either: a job restores into its model).
std::unique_ptr<Model> CheckpointModel() {
  v1::ModelSpec proto;
  google::protobuf::TextFormat::ParseFromString(kCnnSpec, &proto);
  auto spec = server::ModelSpecFromProto(proto, "spec", FuzzLimits());
  auto model = Model::Build(*spec);
  if (!model.ok()) abort();
  return std::move(*model);
}

void ReadCheckpoint(const Input& in) {
  const std::string path = Dir() + "/j.ckpt";
  WriteFileOrDie(path, MaybeFrame(in.first, in.frame));
  server::StoredCheckpoint ckpt;
  if (!server::ReadRecord(path, &ckpt).ok()) return;
  std::unique_ptr<Model> model = CheckpointModel();
  v1::OptimizerConfig config;
  config.set_kind(static_cast<v1::OptimizerKind>(in.optimizer));
  TrainOptions opts;
  auto opt = server::OptimizerFromProto(config, "optimizer");
  if (!opt.ok()) abort();
  opts.optimizer = *opt;
  auto trainer = Trainer::Create(model.get(), opts);
  if (!trainer.ok()) abort();
  auto state = server::RunStateFromProto(ckpt, FuzzLimits());
  if (!state.ok()) return;
  if (!state->Restore(trainer->get()).ok()) return;
  // One step from the restored state, as the resumed job would take.
  Tensor x(Shape{2, 1, 6, 6}), y(Shape{2});
  for (int64_t i = 0; i < x.size(); ++i) x[i] = 0.1f * float(i % 5);
  y[0] = 0;
  y[1] = 2;
  StepStats stats;
  (*trainer)->TrainStep(x, y, /*layer_stats=*/true, &stats).IgnoreError();
}

}  // namespace
}  // namespace nnlab::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  nnlab::fuzz::QuietLogs();
  nnlab::fuzz::Dir();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using nnlab::fuzz::Reader;
  if (size < 3) return 0;
  const nnlab::fuzz::Input in = nnlab::fuzz::Split(data, size);
  switch (in.reader) {
    case Reader::kIdx:
      nnlab::fuzz::ReadIdx(in);
      break;
    case Reader::kModelFile:
      nnlab::fuzz::ReadModelFile(in);
      break;
    case Reader::kDatasetFile:
      nnlab::fuzz::ReadDatasetFile(in);
      break;
    case Reader::kJobFiles:
      nnlab::fuzz::ReadJobFiles(in);
      break;
    default:
      nnlab::fuzz::ReadCheckpoint(in);
      break;
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  using nnlab::fuzz::Reader;
  static nnlab::fuzz::ProtoMutator* mutator = new nnlab::fuzz::ProtoMutator(
      {"j-1", "m", "conv2d0.weight", "conv2d0.bias", "dense8.weight",
       "batch_norm1.running_mean", "ds-000000000001"});
  // Framed records are mutated as the message they hold; the rest (IDX
  // files, raw frames, job files whose log shares the input) byte-wise.
  if (size < 3 || (data[1] & 1) == 0) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  const google::protobuf::Message* prototype = nullptr;
  switch (data[0] % Reader::kNumReaders) {
    case Reader::kModelFile:
      prototype = &nnlab::server::StoredModel::default_instance();
      break;
    case Reader::kDatasetFile:
      prototype = &nnlab::server::StoredDataset::default_instance();
      break;
    case Reader::kCheckpoint:
      prototype = &nnlab::server::StoredCheckpoint::default_instance();
      break;
    default:
      return LLVMFuzzerMutate(data, size, max_size);
  }
  return mutator->MutateInput(*prototype, nnlab::fuzz::Format::kBinary,
                              /*prefix=*/3, data, size, max_size, seed);
}

// Fuzzes UploadDataset, the client-streaming RPC: the input is an
// UploadSequence (fuzz.proto), a list of UploadDatasetRequest messages
// streamed in order to the real TrainingServiceImpl through an in-process
// gRPC channel, so chunk assembly (services.cc) and validation and
// persistence (datasets.cc) run as they do for a remote client. Uploads
// that succeed are deleted again so the registry stays small.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz.pb.h"  // Generated from tests/fuzz/fuzz.proto.
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/training.grpc.pb.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/models.h"
#include "server/services.h"
#include "server/storage.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/proto_mutator.h"

namespace nnlab::fuzz {
namespace {

namespace v1 = ::nnlab::v1;

constexpr int64_t kMaxUploadBytes = int64_t{4} << 20;
constexpr int64_t kMaxPad = int64_t{1} << 20;

class Fixture {
 public:
  Fixture() {
    QuietLogs();
    const std::string dir = MakeTempDir("upload");
    models_ = std::make_unique<server::ModelRegistry>(
        absl::StrCat(dir, "/models"), FuzzLimits(), 10);
    datasets_ = std::make_unique<server::DatasetRegistry>(
        absl::StrCat(dir, "/builtin"), absl::StrCat(dir, "/datasets"),
        kMaxUploadBytes, FuzzLimits());
    if (!models_->Load().ok() || !datasets_->Load().ok()) abort();
    server::JobManagerOptions jo;
    jo.dir = absl::StrCat(dir, "/jobs");
    jobs_ = std::make_unique<server::JobManager>(jo, models_.get(),
                                                 datasets_.get());
    context_.models = models_.get();
    context_.datasets = datasets_.get();
    context_.jobs = jobs_.get();
    service_ = std::make_unique<server::TrainingServiceImpl>(&context_);
    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr) abort();
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    stub_ = v1::TrainingService::NewStub(server_->InProcessChannel(args));
  }

  void Run(UploadSequence seq) {
    if (seq.messages_size() > 0 && seq.messages(0).has_header()) {
      v1::DatasetHeader* h = seq.mutable_messages(0)->mutable_header();
      if (seq.pad()) Pad(*h, &seq);
      if (seq.fix_crc()) {
        uint32_t crc = 0;
        for (const auto& m : seq.messages()) {
          crc = server::Crc32c(m.chunk(), crc);
        }
        seq.mutable_messages(0)->mutable_header()->set_crc32c(crc);
      }
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::DatasetInfo info;
    auto writer = stub_->UploadDataset(&ctx, &info);
    for (const auto& m : seq.messages()) {
      if (!writer->Write(m)) break;
    }
    if (seq.cancel()) ctx.TryCancel();
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (status.ok()) {
      if (info.dataset_id().empty()) abort();
      // The upload is there, readable, and then gone again.
      auto pair = datasets_->Get(info.dataset_id());
      if (!pair.ok()) abort();
      if (!datasets_->Delete(info.dataset_id()).ok()) abort();
    }
  }

 private:
  // Appends zeros up to the payload size the header implies.
  static void Pad(const v1::DatasetHeader& h, UploadSequence* seq) {
    double sample = 1, target = 1;
    for (int64_t d : h.sample_shape()) sample *= double(d);
    for (int64_t d : h.target_shape()) target *= double(d);
    const double per = sample + (h.num_classes() > 0 ? 1.0 : target);
    const double want = 4.0 * per * double(h.num_samples());
    double have = 0;
    for (const auto& m : seq->messages()) have += double(m.chunk().size());
    const double missing = want - have;
    if (!(missing > 0 && missing <= double(kMaxPad))) return;
    seq->add_messages()->set_chunk(std::string(size_t(missing), '\0'));
  }

  std::unique_ptr<server::ModelRegistry> models_;
  std::unique_ptr<server::DatasetRegistry> datasets_;
  std::unique_ptr<server::JobManager> jobs_;
  server::ServiceContext context_;
  std::unique_ptr<server::TrainingServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::TrainingService::Stub> stub_;
};

}  // namespace
}  // namespace nnlab::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static nnlab::fuzz::Fixture* fixture = new nnlab::fuzz::Fixture();
  nnlab::fuzz::UploadSequence seq;
  if (!seq.ParseFromArray(data, static_cast<int>(size))) return 0;
  fixture->Run(std::move(seq));
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  static nnlab::fuzz::ProtoMutator* mutator =
      new nnlab::fuzz::ProtoMutator({"mnist", "ds-000000000001"});
  return mutator->MutateInput(nnlab::fuzz::UploadSequence::default_instance(),
                              nnlab::fuzz::Format::kBinary, /*prefix=*/0, data,
                              size, max_size, seed);
}

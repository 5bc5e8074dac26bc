// Fuzzes the unary RPC handlers of ModelService, TrainingService and
// InferenceService in-process: byte 0 picks the RPC, the rest parses as its
// request message (binary protobuf) and goes straight to the service
// method with a fresh grpc::ServerContext, the way gRPC would hand it over.
//
// The services run on real registries in a temp data directory that holds
// a few fixture models ("mlp", "cnn", "rnn", "gan", "mnist"), one uploaded
// data set and one queued job. Ids "JOB" and "DS" in a request stand for
// the fixture job's and data set's (random) ids. The job manager runs no
// workers, so StartJob queues jobs without training; each input's side
// effects (new models, jobs, deletions) are undone afterwards so inputs
// replay alike.
//
// Left out: StreamMetrics and TrainStream (streaming; TrainStream runs the
// same code as TrainStep) and UploadDataset (fuzz_upload.cc).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
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
using google::protobuf::Message;

// The request message type of each RPC.
const Message& Prototype(uint8_t selector) {
  switch (selector % kNumRpcs) {
    case kCreateModel:
      return v1::CreateModelRequest::default_instance();
    case kGetModel:
      return v1::GetModelRequest::default_instance();
    case kListModels:
      return v1::ListModelsRequest::default_instance();
    case kDeleteModel:
      return v1::DeleteModelRequest::default_instance();
    case kExportModel:
      return v1::ExportModelRequest::default_instance();
    case kImportModel:
      return v1::ImportModelRequest::default_instance();
    case kStartJob:
      return v1::StartJobRequest::default_instance();
    case kGetJob:
      return v1::GetJobRequest::default_instance();
    case kListJobs:
      return v1::ListJobsRequest::default_instance();
    case kCancelJob:
      return v1::CancelJobRequest::default_instance();
    case kPauseJob:
      return v1::PauseJobRequest::default_instance();
    case kResumeJob:
      return v1::ResumeJobRequest::default_instance();
    case kTrainStep:
      return v1::TrainStepRequest::default_instance();
    case kListDatasets:
      return v1::ListDatasetsRequest::default_instance();
    case kDeleteDataset:
      return v1::DeleteDatasetRequest::default_instance();
    case kInfer:
      return v1::InferRequest::default_instance();
    case kSample:
      return v1::SampleRequest::default_instance();
    default:
      return v1::SampleTextRequest::default_instance();
  }
}

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "fuzz_requests setup failed: %s\n", what);
    abort();
  }
}

class Fixture {
 public:
  Fixture() {
    QuietLogs();
    const std::string dir = MakeTempDir("requests");
    const server::Limits limits = FuzzLimits();
    models_ = std::make_unique<server::ModelRegistry>(
        absl::StrCat(dir, "/models"), limits, 1000);
    Check(models_->Load().ok(), "models");
    datasets_ = std::make_unique<server::DatasetRegistry>(
        absl::StrCat(NNLAB_SOURCE_DIR, "/data"), absl::StrCat(dir, "/datasets"),
        int64_t{1} << 20, limits);
    Check(datasets_->Load().ok(), "datasets");
    server::JobManagerOptions jo;
    jo.dir = absl::StrCat(dir, "/jobs");
    jo.max_queued = 4;
    jo.limits = limits;
    Check(server::MakeDirs(jo.dir).ok(), "jobs dir");
    // Not Start()ed: no workers, so jobs stay queued and nothing trains.
    jobs_ = std::make_unique<server::JobManager>(jo, models_.get(),
                                                 datasets_.get());
    context_.models = models_.get();
    context_.datasets = datasets_.get();
    context_.jobs = jobs_.get();
    context_.limits = limits;
    model_service_ = std::make_unique<server::ModelServiceImpl>(&context_);
    training_service_ =
        std::make_unique<server::TrainingServiceImpl>(&context_);
    inference_service_ =
        std::make_unique<server::InferenceServiceImpl>(&context_);
    for (const auto& [id, text] : Fixtures()) fixture_ids_.insert(id);
    Reset();
  }

  void Run(const uint8_t* data, size_t size) {
    if (size < 1) return;
    const uint8_t rpc = data[0] % kNumRpcs;
    std::unique_ptr<Message> req(Prototype(rpc).New());
    if (!req->ParseFromArray(data + 1, static_cast<int>(size - 1))) return;
    SubstituteIds(req.get());
    grpc::ServerContext ctx;
    switch (rpc) {
      case kCreateModel: {
        v1::Model resp;
        model_service_->CreateModel(
            &ctx, static_cast<v1::CreateModelRequest*>(req.get()), &resp);
        break;
      }
      case kGetModel: {
        v1::Model resp;
        model_service_->GetModel(
            &ctx, static_cast<v1::GetModelRequest*>(req.get()), &resp);
        break;
      }
      case kListModels: {
        v1::ListModelsResponse resp;
        model_service_->ListModels(
            &ctx, static_cast<v1::ListModelsRequest*>(req.get()), &resp);
        break;
      }
      case kDeleteModel: {
        v1::DeleteModelResponse resp;
        model_service_->DeleteModel(
            &ctx, static_cast<v1::DeleteModelRequest*>(req.get()), &resp);
        break;
      }
      case kExportModel: {
        v1::ExportModelResponse resp;
        model_service_->ExportModel(
            &ctx, static_cast<v1::ExportModelRequest*>(req.get()), &resp);
        break;
      }
      case kImportModel: {
        v1::Model resp;
        model_service_->ImportModel(
            &ctx, static_cast<v1::ImportModelRequest*>(req.get()), &resp);
        break;
      }
      case kStartJob: {
        v1::Job resp;
        grpc::Status s = training_service_->StartJob(
            &ctx, static_cast<v1::StartJobRequest*>(req.get()), &resp);
        if (s.ok()) {
          // Undo: the job would otherwise hold its model.
          grpc::ServerContext c2;
          v1::CancelJobRequest cancel;
          cancel.set_job_id(resp.job_id());
          v1::Job ignored;
          training_service_->CancelJob(&c2, &cancel, &ignored);
        }
        break;
      }
      case kGetJob: {
        v1::Job resp;
        training_service_->GetJob(
            &ctx, static_cast<v1::GetJobRequest*>(req.get()), &resp);
        break;
      }
      case kListJobs: {
        v1::ListJobsResponse resp;
        training_service_->ListJobs(
            &ctx, static_cast<v1::ListJobsRequest*>(req.get()), &resp);
        break;
      }
      case kCancelJob: {
        v1::Job resp;
        training_service_->CancelJob(
            &ctx, static_cast<v1::CancelJobRequest*>(req.get()), &resp);
        break;
      }
      case kPauseJob: {
        v1::Job resp;
        training_service_->PauseJob(
            &ctx, static_cast<v1::PauseJobRequest*>(req.get()), &resp);
        break;
      }
      case kResumeJob: {
        v1::Job resp;
        training_service_->ResumeJob(
            &ctx, static_cast<v1::ResumeJobRequest*>(req.get()), &resp);
        break;
      }
      case kTrainStep: {
        v1::TrainStepResponse resp;
        training_service_->TrainStep(
            &ctx, static_cast<v1::TrainStepRequest*>(req.get()), &resp);
        break;
      }
      case kListDatasets: {
        v1::ListDatasetsResponse resp;
        training_service_->ListDatasets(
            &ctx, static_cast<v1::ListDatasetsRequest*>(req.get()), &resp);
        break;
      }
      case kDeleteDataset: {
        v1::DeleteDatasetResponse resp;
        training_service_->DeleteDataset(
            &ctx, static_cast<v1::DeleteDatasetRequest*>(req.get()), &resp);
        break;
      }
      case kInfer: {
        v1::InferResponse resp;
        inference_service_->Infer(
            &ctx, static_cast<v1::InferRequest*>(req.get()), &resp);
        break;
      }
      case kSample: {
        v1::SampleResponse resp;
        inference_service_->Sample(
            &ctx, static_cast<v1::SampleRequest*>(req.get()), &resp);
        break;
      }
      case kSampleText: {
        v1::SampleTextResponse resp;
        inference_service_->SampleText(
            &ctx, static_cast<v1::SampleTextRequest*>(req.get()), &resp);
        break;
      }
    }
    if (rpc == kCreateModel || rpc == kDeleteModel || rpc == kImportModel ||
        rpc == kCancelJob || rpc == kPauseJob || rpc == kResumeJob ||
        rpc == kDeleteDataset || rpc == kStartJob) {
      Reset();
    }
  }

 private:
  static std::vector<std::pair<std::string, std::string>> Fixtures() {
    return {{"mlp", kMlpSpec},
            {"cnn", kCnnSpec},
            {"rnn", kRnnSpec},
            {"mnist", kMnistSpec},
            {"gan", kGanSpec}};
  }

  // "JOB" and "DS" in id fields stand for the fixture job and data set.
  void SubstituteIds(Message* msg) {
    const auto* d = msg->GetDescriptor();
    const auto* r = msg->GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const auto* f = d->field(i);
      if (f->is_repeated()) continue;
      if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_STRING) {
        const std::string v = r->GetString(*msg, f);
        if (v == "JOB") r->SetString(msg, f, job_id_);
        if (v == "DS") r->SetString(msg, f, dataset_id_);
      } else if (f->cpp_type() ==
                     google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE &&
                 r->HasField(*msg, f)) {
        SubstituteIds(r->MutableMessage(msg, f));
      }
    }
  }

  // Back to the fixture state: fixture models only, the fixture data set,
  // the fixture job queued.
  void Reset() {
    // The fixture job: queued again if paused; a new one if it ended.
    bool need_job = job_id_.empty();
    if (!need_job) {
      auto job = jobs_->Get(job_id_);
      if (!job.ok()) {
        need_job = true;
      } else if (job->state() == v1::JOB_STATE_PAUSED) {
        Check(jobs_->Resume(job_id_).ok(), "resume fixture job");
      } else if (job->state() != v1::JOB_STATE_QUEUED) {
        need_job = true;
      }
    }
    for (const auto& e : models_->List()) {
      if (fixture_ids_.count(e->id()) == 0) {
        Check(models_->Delete(e->id()).ok(), "delete model");
      }
    }
    for (const auto& [id, text] : Fixtures()) {
      if (models_->Get(id).ok()) continue;
      v1::CreateModelRequest req;
      req.set_model_id(id);
      bool ok = id == "gan" ? google::protobuf::TextFormat::ParseFromString(
                                  text, req.mutable_gan())
                            : google::protobuf::TextFormat::ParseFromString(
                                  text, req.mutable_spec());
      Check(ok, "fixture spec parses");
      auto created = models_->Create(req);
      if (!created.ok()) {
        fprintf(stderr, "%s: %s\n", id.c_str(),
                created.status().ToString().c_str());
      }
      Check(created.ok(), "create fixture model");
    }
    if (dataset_id_.empty() || !datasets_->Get(dataset_id_).ok()) {
      // 6 samples [4] with class labels in [0, 3), the last 2 for testing.
      v1::DatasetHeader h;
      h.set_name("fixture");
      h.add_sample_shape(4);
      h.set_num_classes(3);
      h.set_num_samples(6);
      h.set_test_samples(2);
      std::string payload;
      for (int i = 0; i < 6 * 4 + 6; ++i) {
        const float v = i < 24 ? 0.25f * float(i % 5) : float(i % 3);
        payload.append(reinterpret_cast<const char*>(&v), 4);
      }
      h.set_crc32c(server::Crc32c(payload));
      auto info = datasets_->AddUpload(h, payload);
      Check(info.ok(), "fixture data set");
      dataset_id_ = info->dataset_id();
    }
    if (need_job) {
      v1::JobSpec spec;
      spec.set_model_id("mlp");
      spec.set_dataset(dataset_id_);
      auto job = jobs_->StartJob(spec);
      if (!job.ok()) {
        fprintf(stderr, "%s\n", job.status().ToString().c_str());
      }
      Check(job.ok(), "fixture job");
      job_id_ = job->job_id();
    }
  }

  std::unique_ptr<server::ModelRegistry> models_;
  std::unique_ptr<server::DatasetRegistry> datasets_;
  std::unique_ptr<server::JobManager> jobs_;
  server::ServiceContext context_;
  std::unique_ptr<server::ModelServiceImpl> model_service_;
  std::unique_ptr<server::TrainingServiceImpl> training_service_;
  std::unique_ptr<server::InferenceServiceImpl> inference_service_;
  std::set<std::string> fixture_ids_;
  std::string job_id_;
  std::string dataset_id_;
};

Fixture& GetFixture() {
  static Fixture* f = new Fixture();
  return *f;
}

ProtoMutator& Mutator() {
  static ProtoMutator* m = new ProtoMutator(
      {"mlp", "cnn", "rnn", "gan", "mnist", "fashion-mnist", "JOB", "DS",
       "dense0.weight", "dense0.bias", "generator/dense0.weight"});
  return *m;
}

}  // namespace
}  // namespace nnlab::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nnlab::fuzz::GetFixture().Run(data, size);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  if (size == 0 || max_size < 2) return LLVMFuzzerMutate(data, size, max_size);
  return nnlab::fuzz::Mutator().MutateInput(
      nnlab::fuzz::Prototype(data[0]), nnlab::fuzz::Format::kBinary,
      /*prefix=*/1, data, size, max_size, seed);
}

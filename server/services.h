// The gRPC services of nnlabd on top of the registries and the job
// manager. Every handler checks the bearer token first (ServiceContext::
// CheckAuth), converts client input through convert.h, and returns its
// status through ToGrpcStatus (rpc_status.h). Thread-safe.
#ifndef NNLAB_SERVER_SERVICES_H_
#define NNLAB_SERVER_SERVICES_H_

#include <atomic>
#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/inference.grpc.pb.h"
#include "nnlab/v1/model.grpc.pb.h"
#include "nnlab/v1/training.grpc.pb.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/models.h"

namespace nnlab::server {

// True iff a == b, in time that depends only on the lengths (for secrets).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// What the services share.
struct ServiceContext {
  ModelRegistry* models = nullptr;
  DatasetRegistry* datasets = nullptr;
  JobManager* jobs = nullptr;
  Limits limits;
  // Empty: no authentication.
  std::string token;
  std::atomic<bool> shutting_down{false};

  // When a token is configured: UNAUTHENTICATED unless the call carries
  // exactly one "authorization: Bearer <token>" entry (compared in constant
  // time). The grpc health service is not behind it.
  grpc::Status CheckAuth(grpc::ServerContext* ctx, absl::string_view rpc) const;
};

class ModelServiceImpl final : public v1::ModelService::Service {
 public:
  explicit ModelServiceImpl(ServiceContext* c) : c_(c) {}
  grpc::Status CreateModel(grpc::ServerContext* ctx,
                           const v1::CreateModelRequest* req,
                           v1::Model* resp) override;
  grpc::Status GetModel(grpc::ServerContext* ctx,
                        const v1::GetModelRequest* req,
                        v1::Model* resp) override;
  grpc::Status ListModels(grpc::ServerContext* ctx,
                          const v1::ListModelsRequest* req,
                          v1::ListModelsResponse* resp) override;
  grpc::Status DeleteModel(grpc::ServerContext* ctx,
                           const v1::DeleteModelRequest* req,
                           v1::DeleteModelResponse* resp) override;
  grpc::Status ExportModel(grpc::ServerContext* ctx,
                           const v1::ExportModelRequest* req,
                           v1::ExportModelResponse* resp) override;
  grpc::Status ImportModel(grpc::ServerContext* ctx,
                           const v1::ImportModelRequest* req,
                           v1::Model* resp) override;

 private:
  ServiceContext* c_;
};

class TrainingServiceImpl final : public v1::TrainingService::Service {
 public:
  explicit TrainingServiceImpl(ServiceContext* c) : c_(c) {}
  grpc::Status StartJob(grpc::ServerContext* ctx,
                        const v1::StartJobRequest* req, v1::Job* resp) override;
  grpc::Status StreamMetrics(
      grpc::ServerContext* ctx, const v1::StreamMetricsRequest* req,
      grpc::ServerWriter<v1::MetricEvent>* writer) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx,
                        const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx,
                         const v1::CancelJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status PauseJob(grpc::ServerContext* ctx,
                        const v1::PauseJobRequest* req, v1::Job* resp) override;
  grpc::Status ResumeJob(grpc::ServerContext* ctx,
                         const v1::ResumeJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status TrainStep(grpc::ServerContext* ctx,
                         const v1::TrainStepRequest* req,
                         v1::TrainStepResponse* resp) override;
  grpc::Status TrainStream(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::TrainStepResponse, v1::TrainStepRequest>*
          stream) override;
  grpc::Status UploadDataset(
      grpc::ServerContext* ctx,
      grpc::ServerReader<v1::UploadDatasetRequest>* reader,
      v1::DatasetInfo* resp) override;
  grpc::Status ListDatasets(grpc::ServerContext* ctx,
                            const v1::ListDatasetsRequest* req,
                            v1::ListDatasetsResponse* resp) override;
  grpc::Status DeleteDataset(grpc::ServerContext* ctx,
                             const v1::DeleteDatasetRequest* req,
                             v1::DeleteDatasetResponse* resp) override;

 private:
  absl::Status DoTrainStep(grpc::ServerContext* ctx,
                           const std::string& model_id,
                           const v1::TrainStepRequest& req,
                           v1::TrainStepResponse* resp);
  ServiceContext* c_;
};

class InferenceServiceImpl final : public v1::InferenceService::Service {
 public:
  explicit InferenceServiceImpl(ServiceContext* c) : c_(c) {}
  grpc::Status Infer(grpc::ServerContext* ctx, const v1::InferRequest* req,
                     v1::InferResponse* resp) override;
  grpc::Status Sample(grpc::ServerContext* ctx, const v1::SampleRequest* req,
                      v1::SampleResponse* resp) override;

 private:
  ServiceContext* c_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_SERVICES_H_

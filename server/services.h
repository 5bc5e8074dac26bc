// The gRPC services of nnlabd on top of the registries and the job
// manager. Every handler checks the bearer token first (ServiceContext::
// CheckAuth), converts client input through convert.h, and returns its
// status through ToGrpcStatus (rpc_status.h); ServiceContext::Serve is that
// frame, written once. Thread-safe.
//
// Every RPC is synchronous (one gRPC handler thread per call in flight)
// except two that use the callback API: StreamMetrics, so that a watcher
// holds no thread while it waits for events (any number of idle or slow
// streams cannot starve the handler pool that unary calls need), and Infer,
// so that a short pass skips the hand-off to a handler thread (see
// InferenceServiceImpl).
#ifndef NNLAB_SERVER_SERVICES_H_
#define NNLAB_SERVER_SERVICES_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/dataset.grpc.pb.h"
#include "nnlab/v1/inference.grpc.pb.h"
#include "nnlab/v1/model.grpc.pb.h"
#include "nnlab/v1/training.grpc.pb.h"
#include "server/datasets.h"
#include "server/jobs.h"
#include "server/metric_stream.h"
#include "server/models.h"
#include "server/rpc_status.h"
#include "server/train_session.h"
#include "server/worker_pool.h"

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
  // Client-trained models are written this long after a step at the latest
  // (train_session.h).
  absl::Duration train_persist_interval = absl::Seconds(2);
  std::atomic<bool> shutting_down{false};

  // When a token is configured: UNAUTHENTICATED unless the call carries
  // exactly one "authorization: Bearer <token>" entry (compared in constant
  // time). The grpc health service is not behind it.
  grpc::Status CheckAuth(grpc::ServerContextBase* ctx,
                         absl::string_view rpc) const;

  // The frame of every synchronous handler: CheckAuth, then `body` (any
  // callable returning absl::Status), whose status ToGrpcStatus converts and
  // logs with `rpc` and `context`. `context` (usually the id the call names)
  // is read after `body` ran, so a body may fill it in as it learns it.
  template <typename Body>
  grpc::Status Serve(grpc::ServerContextBase* ctx, absl::string_view rpc,
                     const std::string& context, Body&& body) const {
    grpc::Status auth = CheckAuth(ctx, rpc);
    if (!auth.ok()) return auth;
    const absl::Status status = std::forward<Body>(body)();
    return ToGrpcStatus(status, rpc, context);
  }
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

class DatasetServiceImpl final : public v1::DatasetService::Service {
 public:
  explicit DatasetServiceImpl(ServiceContext* c) : c_(c) {}
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
  ServiceContext* c_;
};

// StreamMetrics is served by the callback API (see the file comment); every
// other method is synchronous. It takes raw bytes and parses them itself:
// gRPC's typed callback handler would answer a request that does not parse
// with UNIMPLEMENTED, where every other RPC answers INTERNAL.
using TrainingServiceBase =
    v1::TrainingService::WithRawCallbackMethod_StreamMetrics<
        v1::TrainingService::Service>;

class TrainingServiceImpl final : public TrainingServiceBase {
 public:
  // REQUIRES: c->models is set.
  explicit TrainingServiceImpl(ServiceContext* c)
      : c_(c),
        datasets_(c),
        streams_(c),
        sessions_(c->models, c->limits, c->train_persist_interval) {}
  grpc::Status StartJob(grpc::ServerContext* ctx,
                        const v1::StartJobRequest* req, v1::Job* resp) override;
  // MetricStreams::Open (metric_stream.h) serves it.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* StreamMetrics(
      grpc::CallbackServerContext* ctx,
      const grpc::ByteBuffer* request) override;
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
  // Steps are persisted by the rule in train_session.h.
  grpc::Status TrainStep(grpc::ServerContext* ctx,
                         const v1::TrainStepRequest* req,
                         v1::TrainStepResponse* resp) override;
  grpc::Status TrainStream(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::TrainStepResponse, v1::TrainStepRequest>*
          stream) override;
  // Deprecated (training.proto): DatasetServiceImpl's handlers serve them.
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
  // The model on a data set's split (evaluate.h: EvaluateOnDataset).
  grpc::Status Evaluate(grpc::ServerContext* ctx,
                        const v1::EvaluateRequest* req,
                        v1::EvaluateResponse* resp) override;

  // Ends every open metric stream with UNAVAILABLE, and any opened later.
  // REQUIRES: ServiceContext::shutting_down is already set.
  void EndStreams();
  // Metric streams open now (started and not yet done).
  int open_streams() const;

 private:
  ServiceContext* c_;
  DatasetServiceImpl datasets_;
  MetricStreams streams_;
  TrainSessions sessions_;  // TrainStep and TrainStream.
};

// Infer is served by the callback API (infer.cc): a request whose forward
// pass is known to be short runs on the gRPC thread that read it, as the
// health service's calls do, which saves the hand-off to a synchronous
// handler thread (most of a small Infer's latency); longer or first-seen
// ones go to a worker pool. Raw bytes for the reason given for
// StreamMetrics. Sample and SampleText are synchronous.
using InferenceServiceBase = v1::InferenceService::WithRawCallbackMethod_Infer<
    v1::InferenceService::Service>;

class InferenceServiceImpl final : public InferenceServiceBase {
 public:
  // `workers`: threads for Infer calls that do not run inline (>= 1).
  explicit InferenceServiceImpl(ServiceContext* c, int workers = 2)
      : c_(c), workers_(workers) {}
  grpc::ServerUnaryReactor* Infer(grpc::CallbackServerContext* ctx,
                                  const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  // The same call served whole on the calling thread (waiting for a model
  // copy if all are busy). gRPC never calls it (the method is registered
  // for callbacks); in-process callers such as the fuzz harness do.
  grpc::Status Infer(grpc::ServerContext* ctx, const v1::InferRequest* req,
                     v1::InferResponse* resp) override;
  grpc::Status Sample(grpc::ServerContext* ctx, const v1::SampleRequest* req,
                      v1::SampleResponse* resp) override;
  // In sample_text.cc.
  grpc::Status SampleText(grpc::ServerContext* ctx,
                          const v1::SampleTextRequest* req,
                          v1::SampleTextResponse* resp) override;

 private:
  ServiceContext* c_;
  WorkerPool workers_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_SERVICES_H_

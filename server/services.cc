#include "server/services.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/kernels/vec_math.h"
#include "core/layers/recurrent.h"
#include "core/layers/registry.h"
#include "core/model/loss.h"
#include "core/model/sampling.h"
#include "core/model/sequence_model.h"
#include "core/status_macros.h"
#include "core/tensor/rng.h"
#include "server/convert.h"
#include "server/evaluate.h"
#include "server/job_spec.h"
#include "server/log.h"
#include "server/onnx_export.h"
#include "server/rpc_status.h"
#include "server/storage.h"

namespace nnlab::server {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // One pass over the longer string, accumulating differences with no early
  // exit, so neither the position of the first difference nor a matching
  // prefix shows in the time taken (only the lengths do).
  const size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff = diff | (x ^ y);
  }
  return diff == 0;
}

namespace {

absl::Status CancelledIf(grpc::ServerContext* ctx) {
  if (ctx->IsCancelled()) {
    return absl::CancelledError(
        "the call was cancelled or its deadline passed");
  }
  return absl::OkStatus();
}

}  // namespace

grpc::Status ServiceContext::CheckAuth(grpc::ServerContextBase* ctx,
                                       absl::string_view rpc) const {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  // Exactly one authorization entry: with several, which one a proxy or a
  // server library would honour is ambiguous.
  auto it = md.find("authorization");
  const bool single = it != md.end() && md.count("authorization") == 1;
  absl::string_view given;
  if (single) given = absl::string_view(it->second.data(), it->second.size());
  const std::string want = absl::StrCat("Bearer ", token);
  // Compare even when the header is missing, so both paths cost the same.
  const bool match = ConstantTimeEquals(given, want);
  if (!single || !match) {
    return ToGrpcStatus(
        absl::UnauthenticatedError(
            "missing or wrong token: send metadata \"authorization: Bearer "
            "<token>\""),
        rpc, ctx->peer());
  }
  return grpc::Status::OK;
}

// --- ModelService ---------------------------------------------------------

grpc::Status ModelServiceImpl::CreateModel(grpc::ServerContext* ctx,
                                           const v1::CreateModelRequest* req,
                                           v1::Model* resp) {
  return c_->Serve(ctx, "CreateModel", req->model_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(auto entry, c_->models->Create(*req));
    *resp = entry->Info();
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::GetModel(grpc::ServerContext* ctx,
                                        const v1::GetModelRequest* req,
                                        v1::Model* resp) {
  return c_->Serve(ctx, "GetModel", req->model_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(auto entry, c_->models->Get(req->model_id()));
    *resp = entry->Info();
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::ListModels(grpc::ServerContext* ctx,
                                          const v1::ListModelsRequest* req,
                                          v1::ListModelsResponse* resp) {
  return c_->Serve(ctx, "ListModels", "", [&]() -> absl::Status {
    if (req->page_size() < 0) {
      return absl::InvalidArgumentError("page_size must be >= 0");
    }
    // Tokens are the last id of the previous page: anything that could not
    // be a model id was not issued here.
    if (!req->page_token().empty()) {
      NNLAB_RETURN_IF_ERROR(CheckId("page_token", req->page_token()));
    }
    const size_t limit =
        req->page_size() == 0 ? SIZE_MAX : size_t(req->page_size());
    for (const auto& e : c_->models->List()) {
      if (!req->page_token().empty() && e->id() <= req->page_token()) continue;
      if (size_t(resp->models_size()) == limit) {
        resp->set_next_page_token(
            resp->models(resp->models_size() - 1).model_id());
        break;
      }
      *resp->add_models() = e->Info();
    }
    return absl::OkStatus();
  });
}

grpc::Status ModelServiceImpl::DeleteModel(grpc::ServerContext* ctx,
                                           const v1::DeleteModelRequest* req,
                                           v1::DeleteModelResponse* resp) {
  return c_->Serve(ctx, "DeleteModel", req->model_id(),
                   [&] { return c_->models->Delete(req->model_id()); });
}

grpc::Status ModelServiceImpl::ExportModel(grpc::ServerContext* ctx,
                                           const v1::ExportModelRequest* req,
                                           v1::ExportModelResponse* resp) {
  return c_->Serve(ctx, "ExportModel", req->model_id(), [&]() -> absl::Status {
    if (!v1::ExportFormat_IsValid(req->format())) {
      return absl::InvalidArgumentError(
          absl::StrCat("format: unknown export format ", req->format()));
    }
    NNLAB_ASSIGN_OR_RETURN(auto entry, c_->models->Get(req->model_id()));
    switch (req->format()) {
      case v1::EXPORT_FORMAT_UNSPECIFIED:
      case v1::EXPORT_FORMAT_NATIVE:
        *resp->mutable_file() = entry->File(/*raw=*/false);
        return absl::OkStatus();
      case v1::EXPORT_FORMAT_ONNX: {
        const ModelPart part =
            entry->is_gan() ? ModelPart::kGenerator : ModelPart::kMain;
        const ModelSpec& spec = entry->spec(part);
        NNLAB_ASSIGN_OR_RETURN(
            *resp->mutable_onnx_model(),
            ExportOnnx(spec, *entry->weights(), ModelEntry::Prefix(part),
                       entry->id(),
                       spec.loss == LossKind::kSoftmaxCrossEntropy &&
                           !entry->is_gan()));
        return absl::OkStatus();
      }
      default:  // Proto3's out-of-range sentinels; refused above.
        return absl::InvalidArgumentError("format: unknown export format");
    }
  });
}

grpc::Status ModelServiceImpl::ImportModel(grpc::ServerContext* ctx,
                                           const v1::ImportModelRequest* req,
                                           v1::Model* resp) {
  return c_->Serve(ctx, "ImportModel", req->model_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(auto entry, c_->models->Import(*req));
    *resp = entry->Info();
    return absl::OkStatus();
  });
}

// --- TrainingService ------------------------------------------------------

grpc::Status TrainingServiceImpl::StartJob(grpc::ServerContext* ctx,
                                           const v1::StartJobRequest* req,
                                           v1::Job* resp) {
  const v1::JobSpec& spec = req->spec();
  return c_->Serve(ctx, "StartJob", spec.model_id(), [&]() -> absl::Status {
    // A batch too large for the model's buffers would exhaust memory in the
    // worker, long after this call returned: refuse it here.
    if (CheckJobBatchSize(spec).ok()) {
      auto entry = c_->models->Get(spec.model_id());
      if (entry.ok()) {
        NNLAB_RETURN_IF_ERROR(CheckJobBatchFits(spec, **entry, c_->limits));
      }
    }
    NNLAB_ASSIGN_OR_RETURN(*resp, c_->jobs->StartJob(spec));
    return absl::OkStatus();
  });
}

// --- StreamMetrics (callback API: metric_stream.h) -------------------------

grpc::ServerWriteReactor<grpc::ByteBuffer>* TrainingServiceImpl::StreamMetrics(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  return streams_.Open(ctx, request);
}

void TrainingServiceImpl::EndStreams() { streams_.EndAll(); }

int TrainingServiceImpl::open_streams() const { return streams_.open(); }

grpc::Status TrainingServiceImpl::GetJob(grpc::ServerContext* ctx,
                                         const v1::GetJobRequest* req,
                                         v1::Job* resp) {
  return c_->Serve(ctx, "GetJob", req->job_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(*resp, c_->jobs->Get(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::ListJobs(grpc::ServerContext* ctx,
                                           const v1::ListJobsRequest* req,
                                           v1::ListJobsResponse* resp) {
  return c_->Serve(ctx, "ListJobs", "", [&]() -> absl::Status {
    if (!v1::JobState_IsValid(req->state())) {
      return absl::InvalidArgumentError("state has an unknown value");
    }
    if (!req->model_id().empty()) {
      NNLAB_RETURN_IF_ERROR(CheckId("model_id", req->model_id()));
    }
    for (v1::Job& j : c_->jobs->List(req->model_id(), req->state())) {
      *resp->add_jobs() = std::move(j);
    }
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::CancelJob(grpc::ServerContext* ctx,
                                            const v1::CancelJobRequest* req,
                                            v1::Job* resp) {
  return c_->Serve(ctx, "CancelJob", req->job_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(*resp, c_->jobs->Cancel(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::PauseJob(grpc::ServerContext* ctx,
                                           const v1::PauseJobRequest* req,
                                           v1::Job* resp) {
  return c_->Serve(ctx, "PauseJob", req->job_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(*resp, c_->jobs->Pause(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::ResumeJob(grpc::ServerContext* ctx,
                                            const v1::ResumeJobRequest* req,
                                            v1::Job* resp) {
  return c_->Serve(ctx, "ResumeJob", req->job_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(*resp, c_->jobs->Resume(req->job_id()));
    return absl::OkStatus();
  });
}

grpc::Status TrainingServiceImpl::TrainStep(grpc::ServerContext* ctx,
                                            const v1::TrainStepRequest* req,
                                            v1::TrainStepResponse* resp) {
  return c_->Serve(ctx, "TrainStep", req->model_id(), [&] {
    return sessions_.Step(
        req->model_id(), *req, [ctx] { return ctx->IsCancelled(); }, resp);
  });
}

grpc::Status TrainingServiceImpl::TrainStream(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::TrainStepResponse, v1::TrainStepRequest>*
        stream) {
  std::string model_id;  // Named in the log once known.
  return c_->Serve(ctx, "TrainStream", model_id, [&]() -> absl::Status {
    v1::TrainStepRequest req;
    absl::Status s;
    int64_t steps = 0;
    while (stream->Read(&req)) {
      if (c_->shutting_down.load()) {
        s = absl::UnavailableError("the server is shutting down");
        break;
      }
      if (model_id.empty()) model_id = req.model_id();
      if (!req.model_id().empty() && req.model_id() != model_id) {
        s = absl::InvalidArgumentError(absl::StrCat(
            "model_id changed from \"", Printable(model_id), "\" to \"",
            Printable(req.model_id()), "\" within one stream"));
        break;
      }
      v1::TrainStepResponse resp;
      s = sessions_.Step(
          model_id, req, [ctx] { return ctx->IsCancelled(); }, &resp);
      if (!s.ok()) break;
      ++steps;
      if (!stream->Write(resp)) {
        s = absl::CancelledError("client went away");
        break;
      }
    }
    // The stream's steps reach disk before its status does.
    if (!model_id.empty()) {
      absl::Status f = sessions_.Persist(model_id);
      if (s.ok()) s = f;
    }
    return s;
  });
}

// The deprecated copies of DatasetService's methods.

grpc::Status TrainingServiceImpl::UploadDataset(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    v1::DatasetInfo* resp) {
  return datasets_.UploadDataset(ctx, reader, resp);
}

grpc::Status TrainingServiceImpl::ListDatasets(
    grpc::ServerContext* ctx, const v1::ListDatasetsRequest* req,
    v1::ListDatasetsResponse* resp) {
  return datasets_.ListDatasets(ctx, req, resp);
}

grpc::Status TrainingServiceImpl::DeleteDataset(
    grpc::ServerContext* ctx, const v1::DeleteDatasetRequest* req,
    v1::DeleteDatasetResponse* resp) {
  return datasets_.DeleteDataset(ctx, req, resp);
}

grpc::Status TrainingServiceImpl::Evaluate(grpc::ServerContext* ctx,
                                           const v1::EvaluateRequest* req,
                                           v1::EvaluateResponse* resp) {
  return c_->Serve(ctx, "Evaluate", req->model_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(
        *resp, EvaluateOnDataset(*c_->models, *c_->datasets, c_->limits, *req));
    return absl::OkStatus();
  });
}

// --- DatasetService -------------------------------------------------------

grpc::Status DatasetServiceImpl::UploadDataset(
    grpc::ServerContext* ctx,
    grpc::ServerReader<v1::UploadDatasetRequest>* reader,
    v1::DatasetInfo* resp) {
  std::string name;  // Named in the log once the header arrived.
  return c_->Serve(ctx, "UploadDataset", name, [&]() -> absl::Status {
    v1::UploadDatasetRequest msg;
    if (!reader->Read(&msg)) {
      return absl::InvalidArgumentError("empty upload: send a header first");
    }
    if (!msg.has_header()) {
      return absl::InvalidArgumentError("the first message must be the header");
    }
    const v1::DatasetHeader header = msg.header();
    name = header.name();
    absl::StatusOr<int64_t> expected = c_->datasets->CheckHeader(header);
    if (!expected.ok()) return expected.status();
    std::string payload;
    // The header is only a claim: memory grows with the bytes that arrive,
    // not with the size announced.
    payload.reserve(static_cast<size_t>(std::min<int64_t>(*expected, 1 << 20)));
    while (reader->Read(&msg)) {
      if (msg.has_header()) {
        return absl::InvalidArgumentError("a second header arrived");
      }
      if (int64_t(payload.size() + msg.chunk().size()) > *expected) {
        return absl::InvalidArgumentError(absl::StrCat(
            "payload exceeds the ", *expected, " bytes the header implies"));
      }
      payload += msg.chunk();
    }
    if (ctx->IsCancelled()) {
      return absl::CancelledError("upload cancelled");
    }
    NNLAB_ASSIGN_OR_RETURN(*resp,
                           c_->datasets->AddUpload(header, std::move(payload)));
    LogInfo(absl::StrCat("dataset ", resp->dataset_id(), " uploaded (",
                         resp->size_bytes(), " bytes)"));
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::ListDatasets(
    grpc::ServerContext* ctx, const v1::ListDatasetsRequest* req,
    v1::ListDatasetsResponse* resp) {
  return c_->Serve(ctx, "ListDatasets", "", [&] {
    for (v1::DatasetInfo& d : c_->datasets->List()) {
      *resp->add_datasets() = std::move(d);
    }
    return absl::OkStatus();
  });
}

grpc::Status DatasetServiceImpl::DeleteDataset(
    grpc::ServerContext* ctx, const v1::DeleteDatasetRequest* req,
    v1::DeleteDatasetResponse* resp) {
  return c_->Serve(ctx, "DeleteDataset", req->dataset_id(),
                   [&] { return c_->datasets->Delete(req->dataset_id()); });
}

// --- InferenceService -----------------------------------------------------

// Infer: infer.cc.

grpc::Status InferenceServiceImpl::Sample(grpc::ServerContext* ctx,
                                          const v1::SampleRequest* req,
                                          v1::SampleResponse* resp) {
  return c_->Serve(ctx, "Sample", req->model_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<ModelEntry> e,
                           c_->models->Get(req->model_id()));
    if (req->count() < 1 || req->count() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("count must be in [1, 1024], got ", req->count()));
    }
    if (!(req->temperature() >= 0) || !std::isfinite(req->temperature())) {
      return absl::InvalidArgumentError("temperature must be finite and >= 0");
    }
    if (!v1::NoiseDistribution_IsValid(req->noise())) {
      return absl::InvalidArgumentError("noise has an unknown value");
    }
    Rng rng(req->seed());
    const int64_t n = req->count();
    const ModelPart part =
        e->is_gan() ? ModelPart::kGenerator : ModelPart::kMain;
    const ModelSpec& spec = e->spec(part);
    NNLAB_RETURN_IF_ERROR(CheckBatchSize(spec, n, c_->limits));
    bool recurrent = false;
    for (const LayerSpec& l : spec.layers) {
      recurrent = recurrent || LayerTraitsOf(l.kind).recurrent;
    }
    if (recurrent && spec.input_shape.size() == 2) {
      // One-to-many generation: each step's output picks the next input.
      const int64_t f = spec.input_shape[1];
      if (req->steps() < 1 || req->steps() > 1000) {
        return absl::InvalidArgumentError(
            absl::StrCat("steps must be in [1, 1000], got ", req->steps()));
      }
      Tensor prime(Shape{n, 1, f});
      if (req->has_prime()) {
        NNLAB_ASSIGN_OR_RETURN(
            Tensor p, TensorFromProto(req->prime(), "prime", c_->limits));
        if (p.shape() != Shape{f}) {
          return absl::InvalidArgumentError(
              absl::StrCat("prime must be [", f, "] (one input step), got ",
                           ShapeToString(p.shape())));
        }
        for (int64_t r = 0; r < n; ++r) {
          std::copy(p.data(), p.data() + f, prime.data() + r * f);
        }
      }
      const int64_t steps = req->steps();
      if (double(n) * double(steps) * double(f) >
          double(c_->limits.max_tensor_elements)) {
        return absl::ResourceExhaustedError(
            absl::StrCat("count * steps * features = ", n, " * ", steps, " * ",
                         f, " is beyond the server's limit of ",
                         c_->limits.max_tensor_elements, " sampled values"));
      }
      std::vector<int64_t> tokens;
      Tensor samples;
      NNLAB_RETURN_IF_ERROR(
          e->WithInferenceModel(part, [&](Model* model, int64_t wstep) {
            resp->set_weights_step(wstep);
            return SampleSequence(model, prime, steps, req->temperature(), &rng,
                                  &tokens, &samples);
          }));
      resp->mutable_tokens()->Add(tokens.begin(), tokens.end());
      TensorToProto(samples, false, resp->mutable_samples());
      return absl::OkStatus();
    }
    // Noise in, samples out (a GAN generator or any model fed noise).
    v1::NoiseDistribution dist = req->noise();
    if (dist == v1::NOISE_UNSPECIFIED)
      dist = e->is_gan() ? e->noise() : v1::NOISE_UNIFORM;
    Shape zshape{n};
    for (int64_t d : spec.input_shape) zshape.push_back(d);
    if (NumElements(zshape) > c_->limits.max_tensor_elements) {
      return absl::ResourceExhaustedError("count * input size is too large");
    }
    Tensor z(zshape);
    for (int64_t i = 0; i < z.size(); ++i) {
      z[i] = dist == v1::NOISE_NORMAL ? rng.Normal() : rng.Uniform(-1.0f, 1.0f);
    }
    return e->WithInferenceModel(part, [&](Model* model, int64_t wstep) {
      NNLAB_RETURN_IF_ERROR(CancelledIf(ctx));
      const Tensor& out = model->Forward(z, Mode::kEval);
      TensorToProto(out, false, resp->mutable_samples());
      resp->set_weights_step(wstep);
      return absl::OkStatus();
    });
  });
}

}  // namespace nnlab::server

// InferenceService.Infer (a member of InferenceServiceImpl, kept apart from
// services.cc): served by the callback API, see services.h.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/kernels/vec_math.h"
#include "core/model/loss.h"
#include "core/model/sampling.h"
#include "core/status_macros.h"
#include "server/convert.h"
#include "server/rpc_status.h"
#include "server/services.h"

namespace nnlab::server {
namespace {

// A request runs inline on the gRPC thread when its forward pass was
// measured to take at most this long (a batch of a few images on a small
// network); a gRPC thread that computes longer holds up other calls.
constexpr int64_t kInlineForwardNanos = 200'000;

// One Infer call between its arrival and its answer; owned by the call's
// handler, then by the worker task if it goes to the pool.
struct InferCall {
  v1::InferRequest req;
  std::shared_ptr<ModelEntry> entry;
  ModelPart part = ModelPart::kMain;
  Tensor x;
  v1::InferResponse resp;
};

// Everything before the forward pass: the model, the arguments, the input.
absl::Status Prepare(ModelRegistry* models, const Limits& limits,
                     InferCall* call) {
  NNLAB_ASSIGN_OR_RETURN(call->entry, models->Get(call->req.model_id()));
  if (call->req.top_k() < 0 || call->req.top_k() > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be in [0, 1000], got ", call->req.top_k()));
  }
  NNLAB_ASSIGN_OR_RETURN(call->x,
                         TensorFromProto(call->req.inputs(), "inputs", limits));
  call->part =
      call->entry->is_gan() ? ModelPart::kDiscriminator : ModelPart::kMain;
  if (call->x.rank() >= 1) {
    NNLAB_RETURN_IF_ERROR(CheckBatchSize(
        call->entry->sample_elements(call->part), call->x.dim(0), limits));
  }
  return absl::OkStatus();
}

// The forward pass on `model` and the response.
absl::Status Compute(grpc::ServerContextBase* ctx, InferCall* call,
                     Model* model, int64_t step) {
  NNLAB_RETURN_IF_ERROR(model->CheckInput(call->x));
  if (ctx->IsCancelled()) {
    return absl::CancelledError(
        "the call was cancelled or its deadline passed");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Tensor& out = model->Forward(call->x, Mode::kEval);
  call->entry->RecordForwardNanos(
      call->part,
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::steady_clock::now() - t0)
          .count(),
      call->x.dim(0));
  const v1::InferRequest& req = call->req;
  v1::InferResponse* resp = &call->resp;
  TensorToProto(out, req.raw_output(), resp->mutable_outputs());
  resp->set_weights_step(step);
  // Softmax models score classes jointly; sigmoid-class models (Nielsen's
  // ch. 5 net) score each class by its own unit: argmax is the same.
  const LossKind loss = call->entry->spec(call->part).loss;
  const bool classifier = loss == LossKind::kSoftmaxCrossEntropy ||
                          loss == LossKind::kSigmoidCrossEntropyClasses;
  if (classifier && out.rank() == 2) {
    Tensor probs;
    if (loss == LossKind::kSoftmaxCrossEntropy) {
      Softmax(out, &probs);
    } else {
      probs.Resize(out.shape());
      VecSigmoid(out.data(), probs.data(), out.size());
    }
    const int64_t n = probs.rows(), k = probs.cols();
    for (int64_t r = 0; r < n; ++r) {
      const float* p = probs.data() + r * k;
      resp->add_predictions(std::max_element(p, p + k) - p);
      if (req.top_k() > 0) {
        v1::TopK* t = resp->add_top_k();
        for (int64_t c : TopK(p, k, req.top_k())) {
          t->add_classes(c);
          t->add_probabilities(p[c]);
        }
      }
    }
  }
  return absl::OkStatus();
}

// Sends `status`, or on success the response, and ends the call.
void Finish(grpc::ServerUnaryReactor* reactor, const absl::Status& status,
            const std::string& model_id, const v1::InferResponse& resp,
            grpc::ByteBuffer* response) {
  grpc::Status out = ToGrpcStatus(status, "Infer", model_id);
  if (out.ok()) {
    bool own_buffer = false;
    out = grpc::SerializationTraits<v1::InferResponse>::Serialize(
        resp, response, &own_buffer);
  }
  reactor->Finish(out);
}

}  // namespace

grpc::Status InferenceServiceImpl::Infer(grpc::ServerContext* ctx,
                                         const v1::InferRequest* req,
                                         v1::InferResponse* resp) {
  return c_->Serve(ctx, "Infer", req->model_id(), [&]() -> absl::Status {
    InferCall call;
    call.req = *req;
    NNLAB_RETURN_IF_ERROR(Prepare(c_->models, c_->limits, &call));
    NNLAB_RETURN_IF_ERROR(call.entry->WithInferenceModel(
        call.part, [ctx, &call](Model* model, int64_t step) {
          return Compute(ctx, &call, model, step);
        }));
    *resp = std::move(call.resp);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::Infer(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto call = std::make_unique<InferCall>();
  grpc::ByteBuffer bytes(*request);  // Deserialize consumes its input.
  grpc::Status parsed =
      grpc::SerializationTraits<v1::InferRequest>::Deserialize(&bytes,
                                                               &call->req);
  if (parsed.ok()) parsed = c_->CheckAuth(ctx, "Infer");
  if (!parsed.ok()) {
    reactor->Finish(parsed);
    return reactor;
  }
  absl::Status status = Prepare(c_->models, c_->limits, call.get());
  if (!status.ok()) {
    Finish(reactor, status, call->req.model_id(), call->resp, response);
    return reactor;
  }
  auto compute = [ctx, c = call.get()](Model* model, int64_t step) {
    return Compute(ctx, c, model, step);
  };
  // Inline only when the pass is known to be short and a model copy is free
  // (TryWithInferenceModel never waits); anything else goes to a worker.
  const int64_t per_sample = call->entry->forward_nanos_per_sample(call->part);
  const int64_t samples =
      std::max<int64_t>(1, call->x.rank() >= 1 ? call->x.dim(0) : 1);
  if (per_sample >= 0 && per_sample <= kInlineForwardNanos / samples &&
      call->entry->TryWithInferenceModel(call->part, compute, &status)) {
    Finish(reactor, status, call->req.model_id(), call->resp, response);
    return reactor;
  }
  workers_.Run([ctx, reactor, response,
                c = std::shared_ptr<InferCall>(std::move(call))] {
    absl::Status s = c->entry->WithInferenceModel(
        c->part, [ctx, &c](Model* model, int64_t step) {
          return Compute(ctx, c.get(), model, step);
        });
    Finish(reactor, s, c->req.model_id(), c->resp, response);
  });
  return reactor;
}

}  // namespace nnlab::server

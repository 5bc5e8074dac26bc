// InferenceService.SampleText: text from a character model (a member of
// InferenceServiceImpl, kept apart from services.cc).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/sequence_model.h"
#include "core/status_macros.h"
#include "core/tensor/rng.h"
#include "server/char_datasets.h"
#include "server/services.h"

namespace nnlab::server {
namespace {

constexpr int64_t kMaxPrime = 1000;
constexpr int64_t kMaxLength = 10000;

// The character data set of the model's latest job, if any.
absl::StatusOr<std::string> DatasetOfLatestJob(const JobManager& jobs,
                                               const std::string& model_id) {
  const std::vector<v1::Job> list =
      jobs.List(model_id, v1::JOB_STATE_UNSPECIFIED);
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    if (IsCharBuiltin(it->spec().dataset())) return it->spec().dataset();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "model ", model_id,
      " has no job on a character data set to take the vocabulary from; "
      "name the data set (e.g. chars:devil)"));
}

}  // namespace

grpc::Status InferenceServiceImpl::SampleText(grpc::ServerContext* ctx,
                                              const v1::SampleTextRequest* req,
                                              v1::SampleTextResponse* resp) {
  return c_->Serve(ctx, "SampleText", req->model_id(), [&]() -> absl::Status {
    NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<ModelEntry> e,
                           c_->models->Get(req->model_id()));
    if (req->prime().empty() ||
        static_cast<int64_t>(req->prime().size()) > kMaxPrime) {
      return absl::InvalidArgumentError(
          absl::StrCat("prime must hold 1 to ", kMaxPrime, " characters, got ",
                       req->prime().size()));
    }
    if (req->length() < 1 || req->length() > kMaxLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          "length must be in [1, ", kMaxLength, "], got ", req->length()));
    }
    if (!(req->temperature() > 0) || !std::isfinite(req->temperature())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "temperature must be finite and > 0, got ", req->temperature()));
    }
    std::string dataset = req->dataset();
    if (dataset.empty()) {
      NNLAB_ASSIGN_OR_RETURN(dataset,
                             DatasetOfLatestJob(*c_->jobs, req->model_id()));
    } else if (!IsCharBuiltin(dataset)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset \"", dataset,
                       "\" is not a character data set (chars:devil:T=<n>)"));
    }
    NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<const CharCorpus> corpus,
                           CharCorpusFor(dataset));
    for (size_t i = 0; i < req->prime().size(); ++i) {
      const char c = req->prime()[i];
      if (corpus->Index(c) < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("prime: character ", i, " (code ",
                         static_cast<int>(static_cast<unsigned char>(c)),
                         ") is not in the vocabulary of ", dataset));
      }
    }
    const int64_t v = corpus->vocab_size();
    const ModelSpec& spec = e->spec(ModelPart::kMain);
    if (e->is_gan() || spec.loss != LossKind::kSequenceSoftmaxCrossEntropy ||
        spec.input_shape.size() != 2 || spec.input_shape[1] != v) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model ", req->model_id(), " is not a character model of ", dataset,
          " (", v, " characters): it needs inputs [T, ", v,
          "] and loss LOSS_SEQUENCE_SOFTMAX_CROSS_ENTROPY"));
    }
    Rng rng(req->seed());
    return e->WithInferenceModel(
        ModelPart::kMain, [&](Model* model, int64_t wstep) -> absl::Status {
          NNLAB_ASSIGN_OR_RETURN(
              std::string text,
              GenerateText(*corpus, model, req->prime(), req->length(),
                           req->temperature(), &rng));
          resp->set_text(std::move(text));
          resp->set_dataset(dataset);
          resp->set_weights_step(wstep);
          return absl::OkStatus();
        });
  });
}

}  // namespace nnlab::server

#include "server/evaluate.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/train/trainer.h"

namespace nnlab::server {
namespace {

// Samples [begin, begin + size) of `base`, viewed with `sample_shape` (same
// element count). Costs no copy.
class RangeView : public Dataset {
 public:
  RangeView(std::shared_ptr<const Dataset> base, int64_t begin, int64_t size,
            Shape sample_shape)
      : base_(std::move(base)),
        begin_(begin),
        size_(size),
        sample_shape_(std::move(sample_shape)) {}
  int64_t size() const override { return size_; }
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return base_->target_shape(); }
  int num_classes() const override { return base_->num_classes(); }
  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override {
    shifted_.assign(idx.begin(), idx.end());
    for (int64_t& i : shifted_) i += begin_;
    base_->Gather(shifted_, x, y);
    Shape shape{static_cast<int64_t>(idx.size())};
    for (int64_t d : sample_shape_) shape.push_back(d);
    x->Resize(shape);  // Same element count: contents are kept.
  }

 private:
  std::shared_ptr<const Dataset> base_;
  int64_t begin_, size_;
  Shape sample_shape_;
  // Gather's index buffer; a view is used by one evaluation (one thread).
  mutable std::vector<int64_t> shifted_;
};

// The largest batch of at most 256 samples within the limits (the result
// does not depend on it; the memory does).
absl::StatusOr<int64_t> EvalBatchSize(const ModelSpec& spec,
                                      const Limits& limits) {
  int64_t batch = 256;
  while (batch > 1 && !CheckBatchSize(spec, batch, limits).ok()) batch /= 2;
  NNLAB_RETURN_IF_ERROR(CheckBatchSize(spec, batch, limits));
  return batch;
}

}  // namespace

absl::StatusOr<v1::EvaluateResponse> EvaluateOnDataset(
    ModelRegistry& models, DatasetRegistry& datasets, const Limits& limits,
    const v1::EvaluateRequest& req) {
  if (!req.split().empty() && req.split() != "test" && req.split() != "train") {
    return absl::InvalidArgumentError(absl::StrCat(
        "split must be \"test\" or \"train\", got \"", req.split(), "\""));
  }
  if (req.offset() < 0 || req.limit() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("offset and limit must be >= 0, got ", req.offset(),
                     " and ", req.limit()));
  }
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<ModelEntry> entry,
                         models.Get(req.model_id()));
  if (entry->is_gan()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", req.model_id(),
                     " is a GAN; Evaluate needs a model with a loss"));
  }
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<const DatasetPair> data,
                         datasets.Get(req.dataset()));
  const bool test = req.split() != "train";
  const std::shared_ptr<const Dataset>& split = test ? data->test : data->train;
  if (split == nullptr || split->size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("data set ", req.dataset(), " has no ",
                     test ? "test" : "training", " split"));
  }
  const int64_t n = split->size();
  if (req.offset() >= n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "offset ", req.offset(), " leaves no samples: the ",
        test ? "test" : "training", " split of ", req.dataset(), " has ", n));
  }
  const int64_t count = req.limit() > 0
                            ? std::min(req.limit(), n - req.offset())
                            : n - req.offset();

  const ModelSpec& spec = entry->spec(ModelPart::kMain);
  if (NumElements(spec.input_shape) != NumElements(split->sample_shape())) {
    return absl::InvalidArgumentError(
        absl::StrCat("model input_shape ", ShapeToString(spec.input_shape),
                     " does not match the data set's samples ",
                     ShapeToString(split->sample_shape())));
  }
  NNLAB_ASSIGN_OR_RETURN(const int64_t batch, EvalBatchSize(spec, limits));
  const RangeView view(split, req.offset(), count, spec.input_shape);

  v1::EvaluateResponse resp;
  NNLAB_RETURN_IF_ERROR(entry->WithInferenceModel(
      ModelPart::kMain, [&](Model* model, int64_t step) -> absl::Status {
        NNLAB_ASSIGN_OR_RETURN(EvalResult r, Evaluate(model, view, batch));
        resp.set_samples(r.samples);
        resp.set_loss(r.loss);
        resp.set_is_classifier(model->loss()->is_classifier());
        resp.set_accuracy(resp.is_classifier() ? r.accuracy : 0);
        resp.set_weights_step(step);
        return absl::OkStatus();
      }));
  return resp;
}

}  // namespace nnlab::server

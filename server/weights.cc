#include "server/weights.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab::server {
namespace {

absl::Status CopyNamed(const std::vector<std::pair<std::string, Tensor>>& all,
                       absl::string_view prefix,
                       const std::vector<std::pair<std::string, Tensor*>>& dst,
                       absl::string_view what) {
  std::vector<std::pair<std::string, const Tensor*>> src;
  for (const auto& [name, t] : all) {
    if (absl::StartsWith(name, prefix)) {
      src.emplace_back(name.substr(prefix.size()), &t);
    }
  }
  if (src.size() != dst.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": expected ", dst.size(), " tensors, got ", src.size()));
  }
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i].first != dst[i].first) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "[", i, "]: expected \"", dst[i].first,
                       "\", got \"", src[i].first, "\""));
    }
    if (src[i].second->shape() != dst[i].second->shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " ", src[i].first, ": shape ",
          ShapeToString(src[i].second->shape()), " does not match the model's ",
          ShapeToString(dst[i].second->shape())));
    }
  }
  for (size_t i = 0; i < src.size(); ++i)
    dst[i].second->CopyFrom(*src[i].second);
  return absl::OkStatus();
}

std::vector<std::pair<std::string, Tensor*>> ParamTensors(Model* model) {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (const Param& p : model->Params()) out.emplace_back(p.name, p.value);
  return out;
}

}  // namespace

void AppendWeights(Model* model, absl::string_view prefix, WeightSet* w) {
  for (const Param& p : model->Params()) {
    w->params.emplace_back(absl::StrCat(prefix, p.name), p.value->Clone());
  }
  for (auto& b : model->Buffers()) {
    w->buffers.emplace_back(absl::StrCat(prefix, b.first), b.second->Clone());
  }
}

std::shared_ptr<WeightSet> CaptureWeights(Model* model, int64_t trained_steps) {
  auto w = std::make_shared<WeightSet>();
  AppendWeights(model, "", w.get());
  w->trained_steps = trained_steps;
  return w;
}

absl::Status LoadWeights(const WeightSet& w, Model* model,
                         absl::string_view prefix) {
  NNLAB_RETURN_IF_ERROR(
      CopyNamed(w.params, prefix, ParamTensors(model), "params"));
  return CopyNamed(w.buffers, prefix, model->Buffers(), "buffers");
}

void WeightsToProto(const WeightSet& w, bool raw, v1::ModelFile* file) {
  file->clear_params();
  file->clear_buffers();
  for (const auto& [name, t] : w.params) {
    v1::NamedTensor* nt = file->add_params();
    nt->set_name(name);
    TensorToProto(t, raw, nt->mutable_tensor());
  }
  for (const auto& [name, t] : w.buffers) {
    v1::NamedTensor* nt = file->add_buffers();
    nt->set_name(name);
    TensorToProto(t, raw, nt->mutable_tensor());
  }
  file->set_trained_steps(w.trained_steps);
}

absl::StatusOr<std::shared_ptr<WeightSet>> WeightsFromProto(
    const v1::ModelFile& file, absl::string_view field, const Limits& limits) {
  auto w = std::make_shared<WeightSet>();
  for (int i = 0; i < file.params_size(); ++i) {
    NNLAB_ASSIGN_OR_RETURN(
        Tensor t,
        TensorFromProto(file.params(i).tensor(),
                        absl::StrCat(field, ".params[", i, "]"), limits));
    w->params.emplace_back(file.params(i).name(), std::move(t));
  }
  for (int i = 0; i < file.buffers_size(); ++i) {
    NNLAB_ASSIGN_OR_RETURN(
        Tensor t,
        TensorFromProto(file.buffers(i).tensor(),
                        absl::StrCat(field, ".buffers[", i, "]"), limits));
    w->buffers.emplace_back(file.buffers(i).name(), std::move(t));
  }
  if (file.trained_steps() < 0 || file.trained_steps() > kMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".trained_steps must be in [0, ", kMaxSteps,
                     "], got ", file.trained_steps()));
  }
  w->trained_steps = file.trained_steps();
  return w;
}

namespace {

void NamedToProto(const RunState::NamedTensors& from,
                  google::protobuf::RepeatedPtrField<v1::NamedTensor>* to) {
  to->Clear();
  for (const auto& [name, t] : from) {
    v1::NamedTensor* nt = to->Add();
    nt->set_name(name);
    TensorToProto(t, /*raw=*/true, nt->mutable_tensor());
  }
}

absl::Status NamedFromProto(
    const google::protobuf::RepeatedPtrField<v1::NamedTensor>& from,
    absl::string_view field, const Limits& limits, RunState::NamedTensors* to) {
  to->clear();
  to->reserve(from.size());
  for (int i = 0; i < from.size(); ++i) {
    NNLAB_ASSIGN_OR_RETURN(
        Tensor t, TensorFromProto(from[i].tensor(),
                                  absl::StrCat(field, "[", i, "]"), limits));
    to->emplace_back(from[i].name(), std::move(t));
  }
  return absl::OkStatus();
}

}  // namespace

void RunStateToProto(const RunState& state, int64_t trained_steps,
                     StoredCheckpoint* ckpt) {
  v1::ModelFile* file = ckpt->mutable_model();
  NamedToProto(state.weights, file->mutable_params());
  NamedToProto(state.buffers, file->mutable_buffers());
  file->set_trained_steps(trained_steps);
  NamedToProto(state.optimizer_slots, ckpt->mutable_optimizer_state());
  ckpt->set_optimizer_step(state.optimizer_step);
  StoredTrainerState* st = ckpt->mutable_trainer();
  st->set_step(state.step);
  st->set_epoch(state.epoch);
  st->set_batch_in_epoch(state.batch_in_epoch);
  st->set_shuffle_rng(state.shuffle_rng);
  ckpt->set_model_rng(state.model_rng);
  ckpt->set_gan_rng(state.gan_rng);
  ckpt->set_discriminator_rng(state.discriminator_rng);
}

absl::StatusOr<RunState> RunStateFromProto(const StoredCheckpoint& ckpt,
                                           const Limits& limits) {
  RunState s;
  const v1::ModelFile& file = ckpt.model();
  NNLAB_RETURN_IF_ERROR(
      NamedFromProto(file.params(), "checkpoint.params", limits, &s.weights));
  NNLAB_RETURN_IF_ERROR(
      NamedFromProto(file.buffers(), "checkpoint.buffers", limits, &s.buffers));
  NNLAB_RETURN_IF_ERROR(NamedFromProto(ckpt.optimizer_state(),
                                       "checkpoint.optimizer_state", limits,
                                       &s.optimizer_slots));
  s.optimizer_step = ckpt.optimizer_step();
  s.step = ckpt.trainer().step();
  s.epoch = ckpt.trainer().epoch();
  s.batch_in_epoch = ckpt.trainer().batch_in_epoch();
  s.shuffle_rng = ckpt.trainer().shuffle_rng();
  s.model_rng = ckpt.model_rng();
  s.gan_rng = ckpt.gan_rng();
  s.discriminator_rng = ckpt.discriminator_rng();
  return s;
}

}  // namespace nnlab::server

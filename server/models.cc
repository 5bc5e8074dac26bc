#include "server/models.h"

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "server/log.h"
#include "server/storage.h"
#include "server/storage.pb.h"

namespace nnlab::server {
namespace {

std::string NewModelId() {
  static std::mt19937_64 gen{std::random_device{}()};
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("m-%012x", gen() & 0xFFFFFFFFFFFFull);
}

int PartIndex(ModelPart part) { return static_cast<int>(part); }

// Inference copies of a model part: each holds the weights and the
// activations of one batch, so all copies of a part stay within ~64 MiB of
// weights; more than one per hardware thread would never run at once.
int InferenceCopiesLimit(int64_t params) {
  constexpr int64_t kBudgetFloats = int64_t{16} << 20;
  const int64_t hw = std::max(2u, std::thread::hardware_concurrency());
  return static_cast<int>(
      std::clamp<int64_t>(kBudgetFloats / std::max<int64_t>(1, params), 1, hw));
}

}  // namespace

void SetTimestampNow(google::protobuf::Timestamp* t) {
  const absl::Time now = absl::Now();
  t->set_seconds(absl::ToUnixSeconds(now));
  t->set_nanos(static_cast<int32_t>(absl::ToUnixNanos(now) % 1000000000));
}

const ModelSpec& ModelEntry::spec(ModelPart part) const {
  switch (part) {
    case ModelPart::kGenerator:
      return generator_;
    case ModelPart::kDiscriminator:
      return discriminator_;
    case ModelPart::kMain:
      break;
  }
  return spec_;
}

const char* ModelEntry::Prefix(ModelPart part) {
  switch (part) {
    case ModelPart::kGenerator:
      return "generator/";
    case ModelPart::kDiscriminator:
      return "discriminator/";
    case ModelPart::kMain:
      break;
  }
  return "";
}

v1::Model ModelEntry::Info() const {
  v1::Model info = base_;
  absl::MutexLock lock(&mu_);
  info.set_trained_steps(weights_->trained_steps);
  if (!owner_.empty() && owner_ != "client") info.set_active_job_id(owner_);
  return info;
}

v1::ModelFile ModelEntry::File(bool raw) const {
  v1::ModelFile file;
  file.set_format_version(1);
  if (is_gan_) {
    *file.mutable_gan() = base_.gan();
  } else {
    *file.mutable_spec() = base_.spec();
  }
  WeightsToProto(*weights(), raw, &file);
  return file;
}

WeightsPtr ModelEntry::weights() const {
  absl::MutexLock lock(&mu_);
  return weights_;
}

void ModelEntry::Publish(WeightsPtr w) {
  absl::MutexLock lock(&mu_);
  weights_ = std::move(w);
  dirty_ = true;
}

absl::StatusOr<std::unique_ptr<Model>> ModelEntry::Instantiate(
    ModelPart part) const {
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                         Model::Build(spec(part)));
  NNLAB_RETURN_IF_ERROR(LoadWeights(*weights(), model.get(), Prefix(part)));
  return model;
}

absl::Status ModelEntry::BeginTraining(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  if (deleted_) {
    return absl::NotFoundError(absl::StrCat("model \"", id_, "\" was deleted"));
  }
  if (!owner_.empty() && owner_ != owner) {
    return absl::FailedPreconditionError(
        absl::StrCat("model \"", id_, "\" is being trained by ",
                     owner_ == "client" ? "client-driven TrainStep calls"
                                        : absl::StrCat("job ", owner_)));
  }
  owner_ = owner;
  return absl::OkStatus();
}

void ModelEntry::EndTraining(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  if (owner_ == owner) owner_.clear();
}

std::string ModelEntry::trainer() const {
  absl::MutexLock lock(&mu_);
  return owner_;
}

absl::Status ModelEntry::WithInferenceModel(ModelPart part,
                                            const InferenceFn& fn) {
  InferencePool& pool = infer_[PartIndex(part)];
  std::unique_ptr<InferenceCopy> copy;
  {
    absl::MutexLock lock(&pool.mu);
    if (pool.limit == 0) {
      return absl::InternalError(
          absl::StrCat("model \"", id_, "\" has no such part"));
    }
    auto ready = [&pool]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool.mu) {
      return !pool.free.empty() || pool.built < pool.limit;
    };
    pool.mu.Await(absl::Condition(&ready));
    if (!pool.free.empty()) {
      copy = std::move(pool.free.back());
      pool.free.pop_back();
    } else {
      ++pool.built;  // Reserved; built below, outside the lock.
    }
  }
  if (copy == nullptr) {
    absl::StatusOr<std::unique_ptr<Model>> model = Model::Build(spec(part));
    absl::MutexLock lock(&pool.mu);
    if (!model.ok()) {
      --pool.built;
      return model.status();
    }
    copy = std::make_unique<InferenceCopy>();
    copy->model = std::move(*model);
  }
  return RunOnCopy(part, std::move(copy), fn);
}

bool ModelEntry::TryWithInferenceModel(ModelPart part, const InferenceFn& fn,
                                       absl::Status* status) {
  InferencePool& pool = infer_[PartIndex(part)];
  std::unique_ptr<InferenceCopy> copy;
  {
    absl::MutexLock lock(&pool.mu);
    if (pool.free.empty()) return false;
    copy = std::move(pool.free.back());
    pool.free.pop_back();
  }
  *status = RunOnCopy(part, std::move(copy), fn);
  return true;
}

absl::Status ModelEntry::RunOnCopy(ModelPart part,
                                   std::unique_ptr<InferenceCopy> copy,
                                   const InferenceFn& fn) {
  WeightsPtr w = weights();
  absl::Status status;
  if (copy->loaded != w) {
    status = LoadWeights(*w, copy->model.get(), Prefix(part));
    // A failed load may leave the copy half-loaded: reload next time.
    copy->loaded = status.ok() ? w : nullptr;
  }
  if (status.ok()) status = fn(copy->model.get(), w->trained_steps);
  InferencePool& pool = infer_[PartIndex(part)];
  absl::MutexLock lock(&pool.mu);
  pool.free.push_back(std::move(copy));
  return status;
}

int ModelEntry::inference_copies_limit(ModelPart part) const {
  const InferencePool& pool = infer_[PartIndex(part)];
  absl::MutexLock lock(&pool.mu);
  return pool.limit;
}

int64_t ModelEntry::forward_nanos_per_sample(ModelPart part) const {
  return forward_nanos_[PartIndex(part)].load(std::memory_order_relaxed);
}

void ModelEntry::RecordForwardNanos(ModelPart part, int64_t nanos,
                                    int64_t samples) {
  if (samples < 1) return;
  // The latest measurement wins: the cost follows the machine's load.
  forward_nanos_[PartIndex(part)].store(std::max<int64_t>(0, nanos / samples),
                                        std::memory_order_relaxed);
}

ModelRegistry::ModelRegistry(std::string dir, const Limits& limits,
                             int max_models)
    : dir_(std::move(dir)), limits_(limits), max_models_(max_models) {}

std::string ModelRegistry::Path(const std::string& id) const {
  return absl::StrCat(dir_, "/", id, ".model");
}

absl::Status ModelRegistry::Load() {
  NNLAB_RETURN_IF_ERROR(MakeDirs(dir_));
  const int cleaned = CleanTempFiles(dir_);
  if (cleaned > 0) {
    LogInfo(absl::StrCat("removed ", cleaned, " temp files in ", dir_));
  }
  for (const std::string& name : ListFiles(dir_, ".model")) {
    const std::string path = absl::StrCat(dir_, "/", name);
    StoredModel stored;
    absl::Status s = ReadRecord(path, &stored);
    if (s.ok() && !IsValidId(stored.model_id())) {
      s = absl::DataLossError(absl::StrCat(path, ": bad model id"));
    }
    absl::StatusOr<std::shared_ptr<ModelEntry>> entry;
    if (s.ok()) {
      entry = MakeEntry(stored.model_id(), stored.file(), true, "stored model");
      s = entry.status();
    }
    if (!s.ok()) {
      LogError(absl::StrCat("skipping model file ", path, ": ", s.ToString()));
      // Remembered by the file's name, so asking for the model says what
      // happened to it instead of NOT_FOUND.
      const std::string id = name.substr(0, name.size() - 6);
      if (IsValidId(id)) {
        absl::MutexLock lock(&mu_);
        damaged_[id] = s.ToString();
      }
      continue;
    }
    *(*entry)->base_.mutable_create_time() = stored.create_time();
    absl::MutexLock lock(&mu_);
    models_[stored.model_id()] = std::move(*entry);
  }
  absl::MutexLock lock(&mu_);
  LogInfo(absl::StrCat("loaded ", models_.size(), " models from ", dir_));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ModelEntry>> ModelRegistry::MakeEntry(
    const std::string& id, const v1::ModelFile& file, bool with_weights,
    absl::string_view field) const {
  std::shared_ptr<ModelEntry> e(new ModelEntry());
  e->id_ = id;
  e->base_.set_model_id(id);
  auto w = std::make_shared<WeightSet>();
  if (file.has_spec()) {
    NNLAB_ASSIGN_OR_RETURN(
        e->spec_,
        ModelSpecFromProto(file.spec(), absl::StrCat(field, ".spec"), limits_));
    NNLAB_ASSIGN_OR_RETURN(
        std::unique_ptr<Model> model,
        BuildModelChecked(e->spec_, absl::StrCat(field, ".spec"), limits_));
    *e->base_.mutable_spec() = file.spec();
    e->base_.set_name(file.spec().name());
    DescribeModel(model.get(), "", &e->base_);
    AppendWeights(model.get(), "", w.get());
  } else if (file.has_gan()) {
    const v1::GanSpec& gan = file.gan();
    const std::string f = absl::StrCat(field, ".gan");
    e->is_gan_ = true;
    if (gan.noise_dim() < 1 || gan.noise_dim() > 65536) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ".noise_dim must be in [1, 65536], got ", gan.noise_dim()));
    }
    e->noise_dim_ = gan.noise_dim();
    e->noise_ =
        gan.noise() == v1::NOISE_NORMAL ? v1::NOISE_NORMAL : v1::NOISE_UNIFORM;
    if (gan.noise() != v1::NOISE_UNSPECIFIED &&
        gan.noise() != v1::NOISE_UNIFORM && gan.noise() != v1::NOISE_NORMAL) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".noise has unknown value"));
    }
    v1::ModelSpec g = gan.generator();
    if (g.input_shape().empty()) g.add_input_shape(gan.noise_dim());
    if (g.input_shape_size() != 1 || g.input_shape(0) != gan.noise_dim()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".generator.input_shape must be [noise_dim] = [",
                       gan.noise_dim(), "]"));
    }
    g.set_loss(v1::LOSS_MSE);  // Unused: the generator trains through D.
    if (g.seed() == 0) g.set_seed(gan.seed());
    NNLAB_ASSIGN_OR_RETURN(
        e->generator_,
        ModelSpecFromProto(g, absl::StrCat(f, ".generator"), limits_));
    NNLAB_ASSIGN_OR_RETURN(
        std::unique_ptr<Model> gm,
        BuildModelChecked(e->generator_, absl::StrCat(f, ".generator"),
                          limits_));
    v1::ModelSpec d = gan.discriminator();
    if (d.input_shape().empty()) {
      for (int64_t dim : gm->output_shape()) d.add_input_shape(dim);
    }
    d.set_loss(v1::LOSS_SIGMOID_CROSS_ENTROPY);
    if (d.seed() == 0) d.set_seed(gan.seed() + 1);
    NNLAB_ASSIGN_OR_RETURN(
        e->discriminator_,
        ModelSpecFromProto(d, absl::StrCat(f, ".discriminator"), limits_));
    if (e->discriminator_.input_shape != gm->output_shape()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".discriminator.input_shape ",
                       ShapeToString(e->discriminator_.input_shape),
                       " must equal the generator's output shape ",
                       ShapeToString(gm->output_shape())));
    }
    NNLAB_ASSIGN_OR_RETURN(
        std::unique_ptr<Model> dm,
        BuildModelChecked(e->discriminator_, absl::StrCat(f, ".discriminator"),
                          limits_));
    if (dm->output_shape() != Shape{1}) {
      return absl::InvalidArgumentError(
          absl::StrCat(f, ".discriminator must end in one output, got ",
                       ShapeToString(dm->output_shape())));
    }
    if (gm->ParameterCount() + dm->ParameterCount() > limits_.max_params) {
      return absl::ResourceExhaustedError(absl::StrCat(
          f, " has more than ", limits_.max_params, " parameters"));
    }
    *e->base_.mutable_gan() = gan;
    e->base_.set_name(gan.name());
    DescribeModel(gm.get(), "generator/", &e->base_);
    DescribeModel(dm.get(), "discriminator/", &e->base_);
    e->base_.clear_input_shape();
    e->base_.add_input_shape(gan.noise_dim());
    e->base_.clear_output_shape();
    for (int64_t dim : gm->output_shape()) e->base_.add_output_shape(dim);
    AppendWeights(gm.get(), "generator/", w.get());
    AppendWeights(dm.get(), "discriminator/", w.get());
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " sets neither spec nor gan"));
  }
  for (ModelPart part :
       {ModelPart::kMain, ModelPart::kGenerator, ModelPart::kDiscriminator}) {
    if (e->is_gan_ != (part == ModelPart::kMain)) {
      e->sample_elements_[PartIndex(part)] =
          EstimateSampleElements(e->spec(part));
      ModelEntry::InferencePool& pool = e->infer_[PartIndex(part)];
      absl::MutexLock lock(&pool.mu);
      pool.limit = InferenceCopiesLimit(EstimateModel(e->spec(part)).params);
    }
  }
  if (with_weights) {
    NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<WeightSet> given,
                           WeightsFromProto(file, field, limits_));
    // Check the given tensors against the built model before accepting.
    if (given->params.size() != w->params.size() ||
        given->buffers.size() != w->buffers.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": has ", given->params.size(), " params and ",
          given->buffers.size(), " buffers; the definition builds ",
          w->params.size(), " and ", w->buffers.size()));
    }
    for (size_t i = 0; i < w->params.size(); ++i) {
      if (given->params[i].first != w->params[i].first ||
          given->params[i].second.shape() != w->params[i].second.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".params[", i, "] is \"", given->params[i].first, "\" ",
            ShapeToString(given->params[i].second.shape()), "; expected \"",
            w->params[i].first, "\" ",
            ShapeToString(w->params[i].second.shape())));
      }
    }
    for (size_t i = 0; i < w->buffers.size(); ++i) {
      if (given->buffers[i].first != w->buffers[i].first ||
          given->buffers[i].second.shape() != w->buffers[i].second.shape()) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ".buffers[", i, "] is \"", given->buffers[i].first,
            "\"; expected \"", w->buffers[i].first, "\""));
      }
    }
    w = std::move(given);
  }
  absl::MutexLock lock(&e->mu_);
  e->weights_ = std::move(w);
  return e;
}

absl::StatusOr<std::shared_ptr<ModelEntry>> ModelRegistry::Register(
    const std::string& requested_id, const v1::ModelFile& file,
    bool with_weights, absl::string_view field) {
  std::string id = requested_id;
  if (id.empty()) {
    id = NewModelId();
  } else {
    NNLAB_RETURN_IF_ERROR(CheckId("model_id", id));
  }
  {
    absl::MutexLock lock(&mu_);
    if (models_.count(id) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("model \"", id, "\" already exists"));
    }
    if (damaged_.count(id) > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "model \"", id,
          "\" has a damaged file on disk; DeleteModel removes it"));
    }
    if (static_cast<int>(models_.size()) >= max_models_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the server holds its limit of ", max_models_,
                       " models; delete one first"));
    }
  }
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<ModelEntry> entry,
                         MakeEntry(id, file, with_weights, field));
  SetTimestampNow(entry->base_.mutable_create_time());
  {
    absl::MutexLock lock(&mu_);
    if (models_.count(id) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat("model \"", id, "\" already exists"));
    }
    models_[id] = entry;
  }
  {
    absl::MutexLock lock(&entry->mu_);
    entry->dirty_ = true;
  }
  absl::Status s = Flush(entry.get());
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    models_.erase(id);
    return s;
  }
  LogInfo(absl::StrCat("model ", id, " created (",
                       entry->base_.parameter_count(), " parameters)"));
  return entry;
}

absl::StatusOr<std::shared_ptr<ModelEntry>> ModelRegistry::Create(
    const v1::CreateModelRequest& request) {
  v1::ModelFile file;
  if (request.has_spec()) {
    *file.mutable_spec() = request.spec();
  } else if (request.has_gan()) {
    *file.mutable_gan() = request.gan();
  } else {
    return absl::InvalidArgumentError(
        "definition: set spec (a ModelSpec) or gan (a GanSpec)");
  }
  return Register(request.model_id(), file, false, "definition");
}

absl::StatusOr<std::shared_ptr<ModelEntry>> ModelRegistry::Import(
    const v1::ImportModelRequest& request) {
  if (!request.has_file()) {
    return absl::InvalidArgumentError("file is missing");
  }
  if (request.file().format_version() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("file.format_version must be 1, got ",
                     request.file().format_version()));
  }
  return Register(request.model_id(), request.file(), true, "file");
}

absl::StatusOr<std::shared_ptr<ModelEntry>> ModelRegistry::Get(
    const std::string& id) const {
  NNLAB_RETURN_IF_ERROR(CheckId("model_id", id));
  absl::MutexLock lock(&mu_);
  auto it = models_.find(id);
  if (it == models_.end()) {
    auto d = damaged_.find(id);
    if (d != damaged_.end()) {
      return absl::DataLossError(
          absl::StrCat("model \"", id, "\" could not be loaded (", d->second,
                       "); DeleteModel removes the damaged file"));
    }
    return absl::NotFoundError(absl::StrCat("model \"", id, "\" not found"));
  }
  return it->second;
}

std::vector<std::shared_ptr<ModelEntry>> ModelRegistry::List() const {
  std::vector<std::shared_ptr<ModelEntry>> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, e] : models_) out.push_back(e);
  return out;
}

absl::Status ModelRegistry::Delete(const std::string& id) {
  NNLAB_RETURN_IF_ERROR(CheckId("model_id", id));
  bool damaged;
  {
    absl::MutexLock lock(&mu_);
    damaged = damaged_.erase(id) > 0;
  }
  if (damaged) {
    absl::MutexLock write_lock(&write_mu_);
    NNLAB_RETURN_IF_ERROR(RemoveFile(Path(id)));
    LogInfo(absl::StrCat("damaged model file of ", id, " deleted"));
    return absl::OkStatus();
  }
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<ModelEntry> e, Get(id));
  {
    absl::MutexLock lock(&e->mu_);
    if (!e->owner_.empty() && e->owner_ != "client") {
      return absl::FailedPreconditionError(
          absl::StrCat("model \"", id, "\" is being trained by job ", e->owner_,
                       "; cancel it first"));
    }
    e->deleted_ = true;
  }
  {
    absl::MutexLock lock(&mu_);
    models_.erase(id);
  }
  absl::MutexLock lock(&write_mu_);
  NNLAB_RETURN_IF_ERROR(RemoveFile(Path(id)));
  LogInfo(absl::StrCat("model ", id, " deleted"));
  return absl::OkStatus();
}

absl::Status ModelRegistry::Flush(ModelEntry* entry) {
  absl::MutexLock write_lock(&write_mu_);
  WeightsPtr w;
  {
    absl::MutexLock lock(&entry->mu_);
    if (!entry->dirty_ || entry->deleted_) return absl::OkStatus();
    entry->dirty_ = false;
    w = entry->weights_;
  }
  StoredModel stored;
  stored.set_model_id(entry->id_);
  *stored.mutable_create_time() = entry->base_.create_time();
  v1::ModelFile* file = stored.mutable_file();
  file->set_format_version(1);
  if (entry->is_gan_) {
    *file->mutable_gan() = entry->base_.gan();
  } else {
    *file->mutable_spec() = entry->base_.spec();
  }
  WeightsToProto(*w, /*raw=*/true, file);
  absl::Status s = WriteRecord(Path(entry->id_), stored);
  if (!s.ok()) {
    absl::MutexLock lock(&entry->mu_);
    entry->dirty_ = true;
  }
  return s;
}

void ModelRegistry::FlushAll() {
  for (const auto& e : List()) {
    absl::Status s = Flush(e.get());
    if (!s.ok())
      LogError(absl::StrCat("saving model ", e->id(), ": ", s.ToString()));
  }
}

}  // namespace nnlab::server

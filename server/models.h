// The model registry: every model the server knows, its definition, its
// latest consistent weights, who trains it, and its persistence in
// <data_dir>/models/<model_id>.model.
//
// Thread safety: ModelRegistry and ModelEntry are thread-safe. Weights are
// published as immutable snapshots (weights.h); at most one trainer (a job
// or a client-driven session) owns a model at a time.
#ifndef NNLAB_SERVER_MODELS_H_
#define NNLAB_SERVER_MODELS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/model/model.h"
#include "core/train/trainer.h"
#include "nnlab/v1/model.pb.h"
#include "server/convert.h"
#include "server/weights.h"

namespace nnlab::server {

// Which network of an entry: the model itself, or one half of a GAN pair.
enum class ModelPart { kMain, kGenerator, kDiscriminator };

class ModelEntry {
 public:
  const std::string& id() const { return id_; }
  bool is_gan() const { return is_gan_; }
  // REQUIRES: the part exists (kMain for plain models, the halves for GANs).
  const ModelSpec& spec(ModelPart part) const;
  // Weight-name prefix of a part ("" or "generator/"...).
  static const char* Prefix(ModelPart part);
  // EstimateSampleElements(spec(part)) (convert.h), computed once: the
  // per-request batch check (CheckBatchSize) without re-walking the layers.
  double sample_elements(ModelPart part) const {
    return sample_elements_[static_cast<int>(part)];
  }
  // GANs: noise dimension and distribution.
  int64_t noise_dim() const { return noise_dim_; }
  v1::NoiseDistribution noise() const { return noise_; }

  // The description with trained_steps and active_job_id filled in.
  v1::Model Info() const;
  // Definition + latest weights as a model file.
  v1::ModelFile File(bool raw) const;

  // Latest published weights (never null).
  WeightsPtr weights() const;
  // Publishes a new snapshot; it will be persisted by the next Flush.
  void Publish(WeightsPtr w);

  // Builds a fresh core model of `part` with the latest weights.
  absl::StatusOr<std::unique_ptr<Model>> Instantiate(ModelPart part) const;

  // Claims the model for a trainer (`owner` = job id or "client");
  // FailedPrecondition naming the current owner otherwise.
  absl::Status BeginTraining(const std::string& owner);
  void EndTraining(const std::string& owner);
  std::string trainer() const;

  using InferenceFn = std::function<absl::Status(Model*, int64_t weights_step)>;

  // Runs `fn` on one of this entry's inference copies of `part`, loaded with
  // the latest weights (reloaded only when a newer snapshot was published).
  // A copy belongs to one call while `fn` runs, so up to
  // inference_copies_limit(part) calls run in parallel; further calls wait
  // for a copy to come free. Copies are built on demand and kept.
  absl::Status WithInferenceModel(ModelPart part, const InferenceFn& fn);
  // As WithInferenceModel, but never waits and never builds a copy: when an
  // already built copy is free it runs `fn`, stores its status in `*status`
  // and returns true; otherwise it returns false and runs nothing. For
  // callers that must not block (gRPC callback handlers).
  bool TryWithInferenceModel(ModelPart part, const InferenceFn& fn,
                             absl::Status* status);
  // The most copies of `part` WithInferenceModel builds: as many as fit in
  // a fixed memory budget, at least 1, at most the hardware threads (0 for
  // a part the entry does not have).
  int inference_copies_limit(ModelPart part) const;

  // Forward-pass cost per sample of `part` in nanoseconds, as last measured
  // by the caller (RecordForwardNanos); -1 before any measurement.
  int64_t forward_nanos_per_sample(ModelPart part) const;
  void RecordForwardNanos(ModelPart part, int64_t nanos, int64_t samples);

 private:
  friend class ModelRegistry;
  ModelEntry() = default;

  std::string id_;
  bool is_gan_ = false;
  ModelSpec spec_, generator_, discriminator_;
  double sample_elements_[3] = {};
  int64_t noise_dim_ = 0;
  v1::NoiseDistribution noise_ = v1::NOISE_UNIFORM;
  v1::Model base_;  // Immutable description.

  mutable absl::Mutex mu_;
  WeightsPtr weights_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  std::string owner_ ABSL_GUARDED_BY(mu_);
  bool deleted_ ABSL_GUARDED_BY(mu_) = false;

  // One inference copy: a built model and the snapshot it holds (kept, so
  // the comparison with the latest snapshot cannot be fooled by a reused
  // address).
  struct InferenceCopy {
    std::unique_ptr<Model> model;
    WeightsPtr loaded;
  };
  struct InferencePool {
    mutable absl::Mutex mu;
    std::vector<std::unique_ptr<InferenceCopy>> free ABSL_GUARDED_BY(mu);
    int built ABSL_GUARDED_BY(mu) = 0;  // Free and in use.
    int limit ABSL_GUARDED_BY(mu) = 0;  // Set when the entry is made.
  };
  // Loads the latest weights into `copy` if needed, runs `fn`, returns the
  // copy to the pool of `part`.
  absl::Status RunOnCopy(ModelPart part, std::unique_ptr<InferenceCopy> copy,
                         const InferenceFn& fn);

  InferencePool infer_[3];
  std::atomic<int64_t> forward_nanos_[3] = {{-1}, {-1}, {-1}};
};

class ModelRegistry {
 public:
  ModelRegistry(std::string dir, const Limits& limits, int max_models);

  // Creates the directory, removes temp files, loads every stored model
  // (corrupt files are logged and skipped; Get reports them as DataLoss).
  absl::Status Load();

  absl::StatusOr<std::shared_ptr<ModelEntry>> Create(
      const v1::CreateModelRequest& request);
  absl::StatusOr<std::shared_ptr<ModelEntry>> Import(
      const v1::ImportModelRequest& request);
  // InvalidArgument for a malformed id, NotFound for an unknown one,
  // DataLoss for one whose file was damaged.
  absl::StatusOr<std::shared_ptr<ModelEntry>> Get(const std::string& id) const;
  // Ordered by id.
  std::vector<std::shared_ptr<ModelEntry>> List() const;
  // FailedPrecondition while it is being trained.
  absl::Status Delete(const std::string& id);

  // Writes the entry's latest weights if they changed since the last write.
  absl::Status Flush(ModelEntry* entry);
  // Flush for every entry (shutdown).
  void FlushAll();

 private:
  // Validates a definition (spec or GAN) and builds the entry. If `file`
  // carries weights they are loaded, else the fresh initialisation is.
  absl::StatusOr<std::shared_ptr<ModelEntry>> MakeEntry(
      const std::string& id, const v1::ModelFile& file, bool with_weights,
      absl::string_view field) const;
  absl::StatusOr<std::shared_ptr<ModelEntry>> Register(
      const std::string& requested_id, const v1::ModelFile& file,
      bool with_weights, absl::string_view field);
  std::string Path(const std::string& id) const;

  const std::string dir_;
  const Limits limits_;
  const int max_models_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<ModelEntry>> models_
      ABSL_GUARDED_BY(mu_);
  // Ids whose files failed to load (checksum, parse, validation), with why:
  // Get reports DataLoss for them, List leaves them out, Delete removes the
  // file.
  std::map<std::string, std::string> damaged_ ABSL_GUARDED_BY(mu_);
  // Serialises writes of model files.
  absl::Mutex write_mu_;
};

// Sets `t` to now.
void SetTimestampNow(google::protobuf::Timestamp* t);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_MODELS_H_

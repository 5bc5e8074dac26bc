// Client-driven training (TrainStep / TrainStream): per model, the copy the
// client's steps train and its optimizer state, kept between calls, and
// when those steps reach the model file.
//
// Durability rule. A step is applied in memory, published to readers
// (Infer, GetModel, a later job) and acknowledged at once; the model file
// is rewritten (ModelRegistry::Flush, an fsynced atomic replace):
//   * when a TrainStream ends, however it ends, before its status is sent
//     (Persist);
//   * by a background flusher once a step has waited `persist_interval`
//     (default 2 s), so a model is written at most about once per interval
//     however fast steps come, and a lone TrainStep still reaches disk;
//   * at clean shutdown: NnlabServer::Shutdown lets calls in flight finish,
//     then ModelRegistry::FlushAll writes every model whose newest weights
//     are not on disk (Shutdown here does the same for this object's
//     sessions), so every step acknowledged before it survives a restart.
// A crash of the process or the machine loses at most the steps acknowledged
// during the last persist_interval (and the write in flight). A failed write
// is never dropped: the flusher logs it and tries again an interval later,
// and the model's next step retries it first, failing with the write's error
// (and training nothing) while the model cannot be persisted; a TrainStream
// whose final write fails ends with that error.
//
// Thread-safe. Steps on one model are serialised; steps on different
// models run in parallel.
#ifndef NNLAB_SERVER_TRAIN_SESSION_H_
#define NNLAB_SERVER_TRAIN_SESSION_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nnlab/v1/training.pb.h"
#include "server/convert.h"
#include "server/models.h"

namespace nnlab::server {

class TrainSessions {
 public:
  // `models` must outlive this object. An interval under 1 ms counts as
  // 1 ms.
  TrainSessions(ModelRegistry* models, const Limits& limits,
                absl::Duration persist_interval = absl::Seconds(2));
  ~TrainSessions();  // Shutdown().

  // Validates and applies one step of `req` to model `model_id` (req's own
  // model_id is ignored): claims the model for the step only (so jobs can
  // run between client steps), trains the session's copy, publishes the
  // weights and fills `resp`. `cancelled` is asked once, before training.
  // FailedPrecondition while a job trains the model; Unavailable after
  // Shutdown.
  absl::Status Step(const std::string& model_id,
                    const v1::TrainStepRequest& req,
                    const std::function<bool()>& cancelled,
                    v1::TrainStepResponse* resp);

  // Writes the model's acknowledged steps now (the end of a TrainStream).
  // OK when there is nothing to write.
  absl::Status Persist(const std::string& model_id);

  // Stops the flusher and writes every pending step; steps after it fail
  // with Unavailable. Idempotent.
  void Shutdown();

 private:
  class Session;

  // The session of `entry`, made on first use (and anew when the id now
  // names another model).
  std::shared_ptr<Session> SessionFor(const std::shared_ptr<ModelEntry>& entry);
  // Writes the session's model if steps are pending (or a write failed).
  absl::Status Write(Session* s);
  void FlusherLoop();

  ModelRegistry* const models_;
  const Limits limits_;
  const absl::Duration persist_interval_;

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_
      ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread flusher_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_TRAIN_SESSION_H_

// Sweeps: a grid or random search over job and model fields, built on the
// job manager. Each trial is an ordinary model (<sweep id>-t<index>, created
// when the sweep starts, so a bad model spec fails StartSweep) and an
// ordinary job labelled "sweep <id> trial <index>", started when fewer than
// max_concurrent trials of the sweep are active (started and not ended; a
// paused trial counts). A scheduler thread polls the sweep's jobs every
// poll interval: it reads their evaluations through job watchers, applies
// the early-stopping rule (sweep.proto's EarlyStopping), starts the next
// trials and ranks them.
//
// Persistence: <dir>/<id>.sweep holds the Sweep record (storage.h's atomic
// records), written when a trial starts or ends, when the sweep changes
// state, and at most once a second otherwise. At Start a RUNNING sweep
// carries on: its jobs were resumed by the job manager's own recovery; a
// trial's evaluations are merged by step, so the ones a job repeats after
// resuming from a checkpoint are not counted twice. A crash between a
// job's start and the record that names it leaves that job outside the
// sweep (the trial then runs again).
//
// Thread-safe.
#ifndef NNLAB_SERVER_SWEEPS_H_
#define NNLAB_SERVER_SWEEPS_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nnlab/v1/sweep.pb.h"
#include "server/jobs.h"
#include "server/models.h"

namespace nnlab::server {

// Most trials one sweep may have.
inline constexpr int kMaxSweepTrials = 1000;

// Sets `param` on a trial's specs (the rules are sweep.proto's SweepAxis).
// InvalidArgument naming the field for an unknown field, a repeated field,
// "job.model_id", or a value that does not parse.
absl::Status ApplySweepParam(const v1::SweepParam& param, v1::ModelSpec* model,
                             v1::JobSpec* job);

// The trials of `spec`, each as its list of settings (one per axis, in axis
// order): the grid, or spec.random_trials draws with spec.seed (the same
// spec always gives the same trials). InvalidArgument naming the field
// ("spec.axes[1].values", ...) for a malformed spec, including any trial
// whose settings do not apply or whose job spec is out of range.
absl::StatusOr<std::vector<std::vector<v1::SweepParam>>> ExpandSweep(
    const v1::SweepSpec& spec);

// The median stopping rule for trial `index` at its latest evaluation
// (sweep.proto): the reason to stop it, or nullopt.
std::optional<std::string> MedianStopReason(const v1::Sweep& sweep, int index);

// Fills sweep->ranking: best metric first, trials without one last.
void RankTrials(v1::Sweep* sweep);

struct SweepManagerOptions {
  std::string dir;  // Where sweep records live.
  absl::Duration poll_interval = absl::Milliseconds(50);
};

class SweepManager {
 public:
  // `models` and `jobs` must outlive the manager.
  SweepManager(SweepManagerOptions options, ModelRegistry* models,
               JobManager* jobs);
  ~SweepManager();

  // Loads the records (a damaged one is logged and skipped) and starts the
  // scheduler.
  absl::Status Start();

  absl::StatusOr<v1::Sweep> StartSweep(const v1::SweepSpec& spec);
  // InvalidArgument for a malformed id, NotFound for an unknown one.
  absl::StatusOr<v1::Sweep> Get(const std::string& id) const;
  std::vector<v1::Sweep> List() const;  // Creation order.
  // FailedPrecondition once the sweep has ended (or, for Pause and Resume,
  // is not RUNNING / PAUSED).
  absl::StatusOr<v1::Sweep> Cancel(const std::string& id);
  absl::StatusOr<v1::Sweep> Pause(const std::string& id);
  absl::StatusOr<v1::Sweep> Resume(const std::string& id);

  // Stops the scheduler and writes every record. Call before the job
  // manager shuts down, so that jobs it interrupts are not taken for ended.
  void Shutdown();

 private:
  struct Entry;
  void Loop();
  // One scheduling pass over `e`; true if its record must be written now.
  bool Tick(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Save(Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pause (pause) or Resume (!pause): the sweep's state, then its active
  // trials' jobs.
  absl::StatusOr<v1::Sweep> PauseOrResume(const std::string& id, bool pause);
  absl::StatusOr<Entry*> Find(const std::string& id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Path(const std::string& id) const;

  const SweepManagerOptions options_;
  ModelRegistry* const models_;
  JobManager* const jobs_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Entry>> sweeps_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_SWEEPS_H_

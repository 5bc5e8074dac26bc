// The coordinator's rendezvous key-value store: what the replicas of a
// distributed job exchange to connect their Gloo transports (each rank's
// addresses), served by ClusterService.StoreSet / StoreGet.
//
// Thread-safe. Bounded: keys up to kMaxKeyBytes, values up to
// kMaxValueBytes, at most kMaxKeys keys (a job's keys are erased with
// ErasePrefix when it ends).
#ifndef NNLAB_SERVER_CLUSTER_RENDEZVOUS_STORE_H_
#define NNLAB_SERVER_CLUSTER_RENDEZVOUS_STORE_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nnlab::server {

class RendezvousStore {
 public:
  static constexpr size_t kMaxKeyBytes = 256;
  static constexpr size_t kMaxValueBytes = 64 << 10;
  static constexpr size_t kMaxKeys = 4096;

  // Sets (or overwrites) `key`. InvalidArgument for an empty or long key,
  // ResourceExhausted for a large value or a full store.
  absl::Status Set(const std::string& key, const std::string& value);
  // The value of `key`, waiting up to `wait` for it to be set:
  // DeadlineExceeded if it still is not.
  absl::StatusOr<std::string> Get(const std::string& key, absl::Duration wait);
  // Erases every key that starts with `prefix`.
  void ErasePrefix(const std::string& prefix);
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> values_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_RENDEZVOUS_STORE_H_

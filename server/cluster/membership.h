// The coordinator's view of its cluster: who joined, where their gRPC and
// Gloo transports listen, and who is still alive (heartbeats). The
// coordinator itself is always member "coordinator".
//
// A member that has not heartbeated for kMissedBeats intervals is dead:
// ListMembers shows it so, Heartbeat answers NOT_FOUND (the worker joins
// again) and the same address may join again. Thread-safe.
#ifndef NNLAB_SERVER_CLUSTER_MEMBERSHIP_H_
#define NNLAB_SERVER_CLUSTER_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nnlab/v1/cluster.pb.h"

namespace nnlab::server {

class Membership {
 public:
  static constexpr int kMissedBeats = 3;
  static constexpr size_t kMaxMembers = 256;

  // `self`: the coordinator's own entry (address, collective address).
  Membership(v1::Member self, absl::Duration heartbeat_interval);

  // InvalidArgument for an empty address or a collective address that is
  // not a numeric IP; AlreadyExists while a live member has `address`;
  // ResourceExhausted past kMaxMembers.
  absl::StatusOr<v1::JoinResponse> Join(const v1::JoinRequest& req);
  // NotFound for an unknown or dead member.
  absl::Status Heartbeat(const v1::HeartbeatRequest& req);
  // The coordinator first, then the workers in the order they joined.
  std::vector<v1::Member> List() const;
  // Live members (coordinator first).
  std::vector<v1::Member> Alive() const;

  absl::Duration heartbeat_interval() const { return interval_; }

 private:
  struct Entry {
    v1::Member info;
    absl::Time last_seen;
    int64_t order = 0;
  };
  bool AliveLocked(const Entry& e, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Member Describe(const Entry& e, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const v1::Member self_;
  const absl::Duration interval_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> members_ ABSL_GUARDED_BY(mu_);  // By id.
  int64_t next_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_MEMBERSHIP_H_

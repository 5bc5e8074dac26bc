#include "server/cluster/membership.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/cluster/gloo_collective.h"
#include "server/log.h"

namespace nnlab::server {

Membership::Membership(v1::Member self, absl::Duration heartbeat_interval)
    : self_(std::move(self)), interval_(heartbeat_interval) {}

bool Membership::AliveLocked(const Entry& e, absl::Time now) const {
  return now - e.last_seen <= kMissedBeats * interval_;
}

v1::Member Membership::Describe(const Entry& e, absl::Time now) const {
  v1::Member m = e.info;
  m.set_alive(AliveLocked(e, now));
  m.set_last_seen_ms_ago(absl::ToInt64Milliseconds(now - e.last_seen));
  return m;
}

absl::StatusOr<v1::JoinResponse> Membership::Join(const v1::JoinRequest& req) {
  if (req.address().empty() || req.address().size() > 256) {
    return absl::InvalidArgumentError(
        "join: address must be the worker's HOST:PORT");
  }
  // The worker checked its own flag; the coordinator accepts what it
  // advertises only if it is a numeric address (wildcards were allowed
  // explicitly over there).
  absl::Status addr = CheckCollectiveAddress(req.collective_address(), true);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("join: ", addr.message()));
  }
  if (req.max_concurrent_jobs() < 0) {
    return absl::InvalidArgumentError("join: max_concurrent_jobs must be >= 0");
  }
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  for (auto it = members_.begin(); it != members_.end();) {
    if (it->second.info.address() == req.address()) {
      if (AliveLocked(it->second, now)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "join: ", req.address(), " is already member ", it->first,
            " (a worker that restarted may join again once its old "
            "membership has expired)"));
      }
      it = members_.erase(it);  // A dead one rejoining: replaced.
    } else {
      ++it;
    }
  }
  if (members_.size() >= kMaxMembers) {
    return absl::ResourceExhaustedError(
        absl::StrCat("join: the cluster has ", kMaxMembers, " members"));
  }
  Entry e;
  e.order = next_++;
  const std::string id = absl::StrCat("worker-", e.order);
  e.info.set_member_id(id);
  e.info.set_address(req.address());
  e.info.set_collective_address(req.collective_address());
  e.info.set_max_concurrent_jobs(req.max_concurrent_jobs());
  e.last_seen = now;
  members_[id] = e;
  LogInfo(absl::StrCat("cluster: ", id, " joined from ", req.address(),
                       " (collective ", req.collective_address(), ")"));
  v1::JoinResponse resp;
  resp.set_member_id(id);
  resp.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(interval_));
  return resp;
}

absl::Status Membership::Heartbeat(const v1::HeartbeatRequest& req) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  auto it = members_.find(req.member_id());
  if (it == members_.end() || !AliveLocked(it->second, now)) {
    return absl::NotFoundError(absl::StrCat("heartbeat: no live member \"",
                                            req.member_id(), "\"; join again"));
  }
  it->second.last_seen = now;
  it->second.info.set_running_jobs(std::max(0, req.running_jobs()));
  return absl::OkStatus();
}

std::vector<v1::Member> Membership::List() const {
  const absl::Time now = absl::Now();
  std::vector<v1::Member> out = {self_};
  out[0].set_coordinator(true);
  out[0].set_alive(true);
  absl::MutexLock lock(&mu_);
  std::vector<const Entry*> entries;
  for (const auto& [id, e] : members_) entries.push_back(&e);
  std::sort(entries.begin(), entries.end(),
            [](const Entry* a, const Entry* b) { return a->order < b->order; });
  for (const Entry* e : entries) out.push_back(Describe(*e, now));
  return out;
}

std::vector<v1::Member> Membership::Alive() const {
  std::vector<v1::Member> out;
  for (v1::Member& m : List()) {
    if (m.alive()) out.push_back(std::move(m));
  }
  return out;
}

}  // namespace nnlab::server

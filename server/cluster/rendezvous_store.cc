#include "server/cluster/rendezvous_store.h"

#include "absl/strings/str_cat.h"

namespace nnlab::server {

absl::Status RendezvousStore::Set(const std::string& key,
                                  const std::string& value) {
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store key must have 1 to ", kMaxKeyBytes, " bytes, got ", key.size()));
  }
  if (value.size() > kMaxValueBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("store value of ", value.size(), " bytes is over the ",
                     kMaxValueBytes, "-byte limit"));
  }
  absl::MutexLock lock(&mu_);
  if (values_.size() >= kMaxKeys && values_.count(key) == 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("rendezvous store is full (", kMaxKeys, " keys)"));
  }
  values_[key] = value;
  return absl::OkStatus();
}

absl::StatusOr<std::string> RendezvousStore::Get(const std::string& key,
                                                 absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto present = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return values_.count(key) > 0;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&present), wait)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "store key \"", key, "\" not set within ", absl::FormatDuration(wait)));
  }
  return values_[key];
}

void RendezvousStore::ErasePrefix(const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  auto it = values_.lower_bound(prefix);
  while (it != values_.end() &&
         it->first.compare(0, prefix.size(), prefix) == 0)
    it = values_.erase(it);
}

size_t RendezvousStore::size() const {
  absl::MutexLock lock(&mu_);
  return values_.size();
}

}  // namespace nnlab::server

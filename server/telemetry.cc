#include "server/telemetry.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

namespace nnlab::server {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {
  for (size_t i = 1; i < bounds_.size(); ++i) {
    NNLAB_CHECK(bounds_[i - 1] < bounds_[i]);
  }
}

Histogram::Histogram(const Histogram& other) : bounds_(other.bounds_) {
  absl::MutexLock lock(&other.mu_);
  counts_ = other.counts_;
  count_ = other.count_;
  sum_ = other.sum_;
}

void Histogram::Observe(double value) {
  // Bucket i counts values <= bounds_[i]; the last one the rest.
  const size_t i =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  absl::MutexLock lock(&mu_);
  ++counts_[i];
  ++count_;
  sum_ += value;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  absl::MutexLock lock(&mu_);
  s.counts = counts_;
  s.count = count_;
  s.sum = sum_;
  return s;
}

std::vector<double> Histogram::LatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  10,    60};
}

void RpcStats::Record(const std::string& method, int code,
                      absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  ++counts_[method][code];
  auto it = latency_.find(method);
  if (it == latency_.end()) {
    it = latency_.emplace(method, Histogram(Histogram::LatencyBounds())).first;
  }
  it->second.Observe(absl::ToDoubleSeconds(latency));
}

std::map<std::string, RpcStats::MethodStats> RpcStats::Read() const {
  std::map<std::string, MethodStats> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [method, codes] : counts_) {
    MethodStats& m = out[method];
    m.by_code = codes;
    m.latency = latency_.at(method).Read();
  }
  return out;
}

ProcessTelemetry& Telemetry() {
  static ProcessTelemetry* t = new ProcessTelemetry();  // Never destroyed.
  return *t;
}

ProcessStats ReadProcessStats() {
  ProcessStats s;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    int64_t n = 0;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, " kB");
      if (absl::SimpleAtoi(v, &n)) s.resident_bytes = n * 1024;
    } else if (absl::ConsumePrefix(&v, "Threads:")) {
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &n)) s.threads = n;
    }
  }
  return s;
}

}  // namespace nnlab::server

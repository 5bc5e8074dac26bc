// What nnlabd counts about itself for /metrics (server/http/metrics.h
// writes it out): latency histograms, RPCs by method and status code, and
// the process-wide counters the job modules record (events dropped for slow
// watchers, checkpoint write durations). Recording is a short critical
// section or an atomic add, cheap enough for every RPC and every
// checkpoint; nothing here is on the per-step training path.
//
// Thread-safe.
#ifndef NNLAB_SERVER_TELEMETRY_H_
#define NNLAB_SERVER_TELEMETRY_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nnlab::server {

// A histogram of durations in seconds with fixed upper bounds (Prometheus
// "le" buckets; +Inf is implicit).
class Histogram {
 public:
  // REQUIRES: `bounds` strictly increasing.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram& other);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // Per bucket (not cumulative), + overflow.
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot Read() const;

  // Bounds for request latencies, 0.5 ms .. 60 s.
  static std::vector<double> LatencyBounds();

 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
};

// Handled RPCs of one server: counts by (method, status code) and latency
// by method. `method` is the full gRPC path ("/pkg.Service/Method").
class RpcStats {
 public:
  void Record(const std::string& method, int code, absl::Duration latency);

  struct MethodStats {
    std::map<int, uint64_t> by_code;
    Histogram::Snapshot latency;
  };
  std::map<std::string, MethodStats> Read() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::map<int, uint64_t>> counts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Histogram> latency_ ABSL_GUARDED_BY(mu_);
};

// Counters of the process as a whole (all servers in it): the job modules
// record into it without a pointer threaded through every layer.
struct ProcessTelemetry {
  // Events watchers missed (skipped for lagging or overtaken by the
  // history limit): the cost a slow watcher pays instead of training.
  std::atomic<uint64_t> watcher_events_dropped{0};
  // Seconds to write one checkpoint file (temp, fsync, rename).
  Histogram checkpoint_write_seconds{
      {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60}};
};
ProcessTelemetry& Telemetry();

// Resident set size in bytes and thread count of this process, from
// /proc/self/status; -1 where unreadable.
struct ProcessStats {
  int64_t resident_bytes = -1;
  int64_t threads = -1;
};
ProcessStats ReadProcessStats();

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_TELEMETRY_H_

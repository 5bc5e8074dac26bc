// StreamMetrics on gRPC's callback API: one MetricStream reactor per call,
// owned by MetricStreams from its start to its OnDone. A watcher holds no
// thread while it waits for events, so any number of idle or slow streams
// cannot starve the synchronous handler pool that unary calls need.
#ifndef NNLAB_SERVER_METRIC_STREAM_H_
#define NNLAB_SERVER_METRIC_STREAM_H_

#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/worker_pool.h"

namespace nnlab::server {

struct ServiceContext;
class MetricStream;

// The open metric streams of one TrainingService. Thread-safe.
class MetricStreams {
 public:
  // `c` must outlive this object.
  explicit MetricStreams(ServiceContext* c) : c_(c) {}

  // Serves one StreamMetrics call: `request` is a serialized
  // v1::StreamMetricsRequest (parsed here, so bytes that do not parse
  // answer INTERNAL as every synchronous RPC does); each message written is
  // a serialized v1::MetricEvent. Replays history from req.from_step, then
  // follows the job live, one write in flight at a time; a slow reader lags
  // in its watcher (bounded by JobManagerOptions::watcher_buffer, gaps
  // reported in dropped_events). Ends OK when the job ends, UNAVAILABLE at
  // shutdown (EndAll), CANCELLED when the client goes away.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Open(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request);

  // Ends every open stream with UNAVAILABLE, and any opened later.
  // REQUIRES: ServiceContext::shutting_down is already set.
  void EndAll();
  // Streams open now (started and not yet done).
  int open() const;

 private:
  friend class MetricStream;
  // Owns a new stream from its start until its OnDone (Take).
  void Add(std::shared_ptr<MetricStream> s);
  std::shared_ptr<MetricStream> Take(MetricStream* s);

  ServiceContext* const c_;
  // One thread each, for work that must not run where it is triggered: a
  // job's wake-up (Watcher::SetWakeup) fires under the job's lock, where a
  // stream cannot read its watcher; opening a watcher may read a finished
  // job's event log from disk, which must not hold up a gRPC callback
  // thread. Tasks not yet started when the streams go are dropped.
  // pump_ pulls and writes the next event of woken streams; opener_ opens
  // watchers.
  WorkerPool pump_{1, WorkerPool::AtStop::kDropQueued};
  WorkerPool opener_{1, WorkerPool::AtStop::kDropQueued};
  mutable absl::Mutex mu_;
  std::map<MetricStream*, std::shared_ptr<MetricStream>> streams_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_METRIC_STREAM_H_

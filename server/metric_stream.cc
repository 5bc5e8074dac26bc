#include "server/metric_stream.h"

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/status_macros.h"
#include "nnlab/v1/training.pb.h"
#include "server/jobs.h"
#include "server/rpc_status.h"
#include "server/services.h"

namespace nnlab::server {

// A MetricStream pulls events from its Watcher without ever blocking: Pump
// reads with a zero timeout and, when nothing is there, returns; the job's
// wake-up (which fires under the job's lock, where the stream may not read
// the watcher) queues the stream on the pump thread, which calls Pump
// again. One write is in flight at a time, so the events a slow client has
// not taken stay in the job's history behind the watcher's cursor, bounded
// by watcher_buffer exactly as they are for any watcher. Lock order: a
// stream's mu_, then the job's lock (inside Watcher::Next); gRPC reactor
// operations (StartWrite, Finish) are called with no lock held.

class MetricStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  MetricStream(MetricStreams* streams, std::string job_id)
      : streams_(streams), job_id_(std::move(job_id)) {}
  ~MetricStream() override {
    if (watcher_ != nullptr) watcher_->SetWakeup(nullptr);
  }

  // Begins writing (or finishes at once with `early` if it is an error);
  // nothing happens before, except finishing on cancel or shutdown.
  // REQUIRES: `self` refers to this stream; `watcher` is set iff early.ok().
  void Start(const std::weak_ptr<MetricStream>& self,
             std::unique_ptr<Watcher> watcher, grpc::Status early) {
    Watcher* w = watcher.get();
    {
      absl::MutexLock lock(&mu_);
      // Cancelled or stopped while the watcher was being opened.
      if (finished_) return;
      watcher_ = std::move(watcher);
      early_ = std::move(early);
      started_ = true;
    }
    if (w != nullptr) {
      WorkerPool* pump = &streams_->pump_;
      std::shared_ptr<std::atomic<bool>> queued = queued_;
      w->SetWakeup([pump, self, queued] {
        if (queued->exchange(true)) return;  // Already queued.
        pump->Run([self] {
          if (std::shared_ptr<MetricStream> s = self.lock()) s->Pumped();
        });
      });
    }
    Pump();
  }

  // Called on the pump thread for a queued stream.
  void Pumped() {
    queued_->store(false);
    Pump();
  }

  // Server shutdown: end with UNAVAILABLE once no write is in flight.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      // A write fails only when the call is already over for the client.
      if (!ok) cancelled_ = true;
    }
    Pump();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    Pump();
  }

  void OnDone() override {
    std::unique_ptr<Watcher> watcher;
    {
      absl::MutexLock lock(&mu_);
      watcher = std::move(watcher_);
    }
    // Unsubscribe first: once SetWakeup returns no wake-up can queue this
    // stream again, and the watcher (with its hold on the job) goes away.
    if (watcher != nullptr) watcher->SetWakeup(nullptr);
    watcher.reset();
    // Possibly the last reference: the stream is deleted when it goes (or
    // when the pump drops the one it holds).
    std::shared_ptr<MetricStream> self = streams_->Take(this);
  }

 private:
  // Starts the next write or the Finish, if the stream is ready for one.
  void Pump() {
    bool write = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || writing_) return;
      if (!started_ && !cancelled_ && !stopping_) return;  // Start pumps.
      if (!early_.ok()) {
        status = early_;
      } else if (cancelled_) {
        status = grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away");
      } else if (stopping_ || streams_->c_->shutting_down.load()) {
        status =
            ToGrpcStatus(absl::UnavailableError("the server is shutting down"),
                         "StreamMetrics", job_id_);
      } else {
        switch (watcher_->Next(absl::ZeroDuration(), &event_)) {
          case Watcher::Result::kEvent: {
            bool own_buffer;
            out_.Clear();  // Serialize wants an empty buffer.
            status = grpc::SerializationTraits<v1::MetricEvent>::Serialize(
                event_, &out_, &own_buffer);
            write = status.ok();
            break;
          }
          case Watcher::Result::kEnded:
            status = grpc::Status::OK;
            break;
          case Watcher::Result::kTimeout:
            return;  // The job's wake-up brings the stream back.
        }
      }
      if (write) {
        writing_ = true;
      } else {
        finished_ = true;
      }
    }
    // out_ is not touched again until OnWriteDone clears writing_.
    if (write) {
      StartWrite(&out_);
    } else {
      Finish(std::move(status));
    }
  }

  MetricStreams* const streams_;
  const std::string job_id_;
  // Set while the stream sits in the pump's queue (shared with the wake-up,
  // which must not touch the stream itself).
  const std::shared_ptr<std::atomic<bool>> queued_ =
      std::make_shared<std::atomic<bool>>(false);
  absl::Mutex mu_;
  std::unique_ptr<Watcher> watcher_ ABSL_GUARDED_BY(mu_);
  grpc::Status early_ ABSL_GUARDED_BY(mu_);
  v1::MetricEvent event_ ABSL_GUARDED_BY(mu_);  // Scratch for Next.
  grpc::ByteBuffer out_;  // The write in flight (see Pump).
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

grpc::ServerWriteReactor<grpc::ByteBuffer>* MetricStreams::Open(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  v1::StreamMetricsRequest parsed;
  grpc::ByteBuffer bytes(*request);  // Deserialize consumes its input.
  grpc::Status status =
      grpc::SerializationTraits<v1::StreamMetricsRequest>::Deserialize(&bytes,
                                                                       &parsed);
  const v1::StreamMetricsRequest* req = &parsed;
  auto stream = std::make_shared<MetricStream>(this, req->job_id());
  MetricStream* raw = stream.get();
  Add(stream);
  if (status.ok()) status = c_->CheckAuth(ctx, "StreamMetrics");
  if (!status.ok()) {
    raw->Start(stream, nullptr, std::move(status));
    return raw;
  }
  Watcher::Options o;
  o.from_step = req->from_step();
  o.every_n = req->every_n();
  o.omit_layer_stats = req->omit_layer_stats();
  std::weak_ptr<MetricStream> weak = stream;
  opener_.Run([this, weak, id = req->job_id(), o] {
    if (weak.expired()) return;  // The client left first.
    absl::StatusOr<std::unique_ptr<Watcher>> w = c_->jobs->Watch(id, o);
    std::shared_ptr<MetricStream> s = weak.lock();
    if (s == nullptr) return;
    if (w.ok()) {
      s->Start(weak, std::move(*w), grpc::Status::OK);
    } else {
      s->Start(weak, nullptr, ToGrpcStatus(w.status(), "StreamMetrics", id));
    }
  });
  return raw;
}

void MetricStreams::Add(std::shared_ptr<MetricStream> s) {
  absl::MutexLock lock(&mu_);
  MetricStream* key = s.get();
  streams_.emplace(key, std::move(s));
}

std::shared_ptr<MetricStream> MetricStreams::Take(MetricStream* s) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(s);
  NNLAB_CHECK(it != streams_.end());
  std::shared_ptr<MetricStream> owned = std::move(it->second);
  streams_.erase(it);
  return owned;
}

void MetricStreams::EndAll() {
  // Streams started from here on see shutting_down in their first Pump.
  std::vector<std::shared_ptr<MetricStream>> open;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [key, s] : streams_) open.push_back(s);
  }
  for (const auto& s : open) s->Stop();
}

int MetricStreams::open() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

}  // namespace nnlab::server

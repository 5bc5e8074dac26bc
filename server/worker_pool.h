// A fixed set of threads running queued tasks in order of arrival: where a
// gRPC callback handler sends work that may block or run long, so that the
// library's own threads never wait on it.
//
// Thread-safe. Tasks must not call Run on a pool that is being destroyed.
#ifndef NNLAB_SERVER_WORKER_POOL_H_
#define NNLAB_SERVER_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nnlab::server {

class WorkerPool {
 public:
  // What the destructor does with tasks still queued.
  enum class AtStop {
    kRunQueued,   // Runs them: a task may be what completes an RPC, which a
                  // server's shutdown waits for.
    kDropQueued,  // Drops them: they would act on what is being torn down.
  };
  // REQUIRES: threads >= 1.
  explicit WorkerPool(int threads, AtStop at_stop = AtStop::kRunQueued);
  // Handles the queued tasks as `at_stop` says, then joins the threads.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`; never blocks beyond a short critical section.
  void Run(std::function<void()> task);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  const AtStop at_stop_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_WORKER_POOL_H_

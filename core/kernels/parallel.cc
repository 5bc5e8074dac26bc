#include "core/kernels/parallel.h"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status_macros.h"

namespace nnlab {
namespace {

class Helpers {
 public:
  // Runs parts 1..parts-1 of fn on helpers while the caller runs part 0.
  void Run(int parts, absl::FunctionRef<void(int)> fn) {
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock()) {  // Busy: run everything here.
      for (int part = 0; part < parts; ++part) fn(part);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(threads_.size()) < parts - 1) {
        const int part = static_cast<int>(threads_.size()) + 1;
        // It takes the current generation as seen, so it joins this call.
        threads_.emplace_back(
            [this, part, seen = generation_] { Loop(part, seen); });
      }
      fn_ = &fn;
      parts_ = parts;
      pending_ = parts - 1;
      ++generation_;
    }
    work_cv_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    fn_ = nullptr;
  }

 private:
  void Loop(int part, uint64_t seen) {
    for (;;) {
      absl::FunctionRef<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (part >= parts_) continue;
        fn = fn_;
      }
      (*fn)(part);
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex call_mu_;  // Held for a whole Run.
  std::mutex mu_;       // Guards the fields below.
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> threads_;
  absl::FunctionRef<void(int)>* fn_ = nullptr;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace

void ParallelFor(int parts, absl::FunctionRef<void(int)> fn) {
  NNLAB_CHECK(parts >= 1);
  if (parts == 1) {
    fn(0);
    return;
  }
  // Never destroyed: helpers may still be waiting at exit.
  static Helpers* helpers = new Helpers();
  helpers->Run(parts, fn);
}

}  // namespace nnlab

#include "core/kernels/parallel.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "core/status_macros.h"

namespace nnlab {
namespace {

thread_local bool t_in_part = false;

// Runs fn(part) with InParallelPart() true (restored after: a nested
// ParallelFor runs its parts inside one of ours).
void RunPart(absl::FunctionRef<void(int)> fn, int part) {
  const bool outer = t_in_part;
  t_in_part = true;
  fn(part);
  t_in_part = outer;
}

// How long a helper (or the caller, for the helpers) spins before blocking
// on a condition variable. Calls come back to back (an LSTM's per-step
// products, split by Gemm): a wake-up through the condition variable costs
// tens of microseconds, as much as a whole 64x512x128 product, and made
// lstm-rows slower on 2 threads than on 1. OpenMP's threads spin the same
// way (longer) between parallel regions.
constexpr auto kSpin = std::chrono::microseconds(100);

// Spins until done() or kSpin has passed; returns done().
template <typename Done>
bool SpinUntil(const Done& done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() - start > kSpin) return done();
  }
}

class Helpers {
 public:
  // Runs parts 1..parts-1 of fn on helpers while the caller runs part 0.
  void Run(int parts, absl::FunctionRef<void(int)> fn) {
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock()) {  // Busy: run everything here.
      for (int part = 0; part < parts; ++part) RunPart(fn, part);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(threads_.size()) < parts - 1) {
        const int part = static_cast<int>(threads_.size()) + 1;
        // It takes the current generation as seen, so it joins this call.
        threads_.emplace_back(
            [this, part, seen = generation_.load()] { Loop(part, seen); });
      }
      fn_ = &fn;
      parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    work_cv_.notify_all();
    RunPart(fn, 0);
    if (!SpinUntil(
            [this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [this] {
        return pending_.load(std::memory_order_acquire) == 0;
      });
    }
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = nullptr;
  }

 private:
  void Loop(int part, uint64_t seen) {
    for (;;) {
      SpinUntil(
          [&] { return generation_.load(std::memory_order_acquire) != seen; });
      absl::FunctionRef<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        if (part >= parts_) continue;
        fn = fn_;
      }
      RunPart(*fn, part);
      // The last helper to finish wakes the caller if it stopped spinning
      // (under mu_, so the wake-up cannot fall between its check and wait).
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_one();
      }
    }
  }

  std::mutex call_mu_;  // Held for a whole Run.
  std::mutex mu_;       // Guards fn_ and parts_, and the waits.
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> threads_;
  absl::FunctionRef<void(int)>* fn_ = nullptr;
  int parts_ = 0;
  // Written under mu_; read while spinning without it.
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
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

bool InParallelPart() { return t_in_part; }

}  // namespace nnlab

// Collective: the one call a data-parallel training run makes across its
// replicas. Every replica calls AllreduceAverage once per step, between
// backward and the optimizer step, with the same buffer sizes; afterwards
// every replica holds the same averaged values and applies the identical
// optimizer step, so the weights stay identical.
//
// The core only sees this interface: one process uses LocalCollective (a
// no-op); the server plugs in an implementation over Gloo
// (server/cluster/gloo_collective.h). Tests use an in-process one.
#ifndef NNLAB_CORE_TRAIN_COLLECTIVE_H_
#define NNLAB_CORE_TRAIN_COLLECTIVE_H_

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace nnlab {

class Collective {
 public:
  virtual ~Collective() = default;

  // This replica's index in [0, size()) and the number of replicas.
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Replaces each buffer, element by element, with its mean over all
  // replicas. REQUIRES: every replica calls it, the same number of times,
  // with the same number of buffers of the same sizes. Errors (a peer that
  // died or timed out: Unavailable / DeadlineExceeded) leave the buffers
  // unspecified; the run must stop, since the replicas are out of step.
  // Not thread-safe: one call at a time per replica.
  virtual absl::Status AllreduceAverage(
      absl::Span<const absl::Span<float>> buffers) = 0;
};

// One replica alone: the mean of one value is itself.
class LocalCollective final : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  absl::Status AllreduceAverage(absl::Span<const absl::Span<float>>) override {
    return absl::OkStatus();
  }
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TRAIN_COLLECTIVE_H_

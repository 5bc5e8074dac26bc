// The Collective (core/train/collective.h) of a distributed job over Gloo:
// TCP transport bound to one interface address, halving-doubling
// allreduce (ring-like bandwidth, log(N) latency; any N), rendezvous
// through a gloo::rendezvous::Store (GrpcStore: the coordinator's gRPC).
// Every Gloo call of nnlab is in gloo_collective.cc.
//
// Faults: every connect and every receive is bounded by `timeout`; a peer
// that dies shows up as a reset connection at once, a peer that hangs or is
// cut off after at most `timeout`. Either way the call returns an error
// (Unavailable / DeadlineExceeded) and the collective is unusable after it:
// the job stops and runs again with a new one.
//
// Gloo's TCP data plane is neither authenticated nor encrypted: bind it to
// a private interface only (nnlabd refuses a wildcard without a flag).
//
// Thread-compatible: one AllreduceAverage at a time.
#ifndef NNLAB_SERVER_CLUSTER_GLOO_COLLECTIVE_H_
#define NNLAB_SERVER_CLUSTER_GLOO_COLLECTIVE_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/train/collective.h"

namespace gloo {
class Algorithm;
class Context;
namespace rendezvous {
class Store;
}
namespace transport {
class Device;
}
}  // namespace gloo

namespace nnlab::server {

// InvalidArgument unless `address` is a numeric IPv4/IPv6 address (no
// port: Gloo picks one per pair); a wildcard (0.0.0.0, ::) only with
// `allow_wildcard`.
absl::Status CheckCollectiveAddress(const std::string& address,
                                    bool allow_wildcard);

class GlooCollective final : public Collective {
 public:
  struct Options {
    int rank = 0;
    int size = 1;
    std::string address = "127.0.0.1";  // Interface to bind (numeric).
    std::chrono::milliseconds timeout{30000};
  };

  // Binds the transport, publishes this rank's addresses in `store` and
  // connects to every other rank (full mesh), waiting at most
  // options.timeout for them. Errors: InvalidArgument for bad options,
  // Unavailable / DeadlineExceeded when a peer does not show up.
  static absl::StatusOr<std::unique_ptr<GlooCollective>> Create(
      const Options& options, gloo::rendezvous::Store* store);
  ~GlooCollective() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  absl::Status AllreduceAverage(
      absl::Span<const absl::Span<float>> buffers) override;

 private:
  GlooCollective() = default;

  int rank_ = 0;
  int size_ = 1;
  bool broken_ = false;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  // The algorithm for the last buffer seen: built once (it registers its
  // transport buffers then), reused every step while the buffer stays.
  std::unique_ptr<gloo::Algorithm> algorithm_;
  float* algorithm_data_ = nullptr;
  size_t algorithm_size_ = 0;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_GLOO_COLLECTIVE_H_

#include "server/cluster/gloo_collective.h"

#include <arpa/inet.h>

#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gloo/algorithm.h"
#include "gloo/allreduce_halving_doubling.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/store.h"
#include "gloo/transport/tcp/device.h"

namespace nnlab::server {
namespace {

// Gloo reports every failure by throwing; this is where nnlab turns them
// into statuses. A timeout says "Timed out" (pair.cc, unbound_buffer.cc).
absl::Status GlooExceptionToStatus(const std::exception& e,
                                   absl::string_view what) {
  const std::string message = e.what();
  const bool timeout = absl::StrContains(message, "Timed out") ||
                       absl::StrContains(message, "timed out") ||
                       absl::StrContains(message, "DEADLINE_EXCEEDED");
  const std::string text = absl::StrCat(what, ": ", message);
  return timeout ? absl::DeadlineExceededError(text)
                 : absl::UnavailableError(text);
}

}  // namespace

absl::Status CheckCollectiveAddress(const std::string& address,
                                    bool allow_wildcard) {
  unsigned char buf[sizeof(struct in6_addr)];
  bool wildcard = false;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    wildcard = std::memcmp(buf, "\0\0\0\0", 4) == 0;
  } else if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    static const unsigned char kAny[16] = {};
    wildcard = std::memcmp(buf, kAny, 16) == 0;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("collective address \"", address,
                     "\" is not a numeric IPv4 or IPv6 address (no port: "
                     "Gloo picks the ports)"));
  }
  if (wildcard && !allow_wildcard) {
    return absl::InvalidArgumentError(absl::StrCat(
        "collective address ", address,
        " is a wildcard: Gloo's TCP transport is neither authenticated nor "
        "encrypted, so bind it to the cluster's private interface (or allow "
        "the wildcard explicitly)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<GlooCollective>> GlooCollective::Create(
    const Options& options, gloo::rendezvous::Store* store) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "collective rank ", options.rank, " of ", options.size, " is invalid"));
  }
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError("collective timeout must be positive");
  }
  auto c = std::unique_ptr<GlooCollective>(new GlooCollective());
  c->rank_ = options.rank;
  c->size_ = options.size;
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.address;
    c->device_ = gloo::transport::tcp::CreateDevice(attr);
    auto context =
        std::make_shared<gloo::rendezvous::Context>(options.rank, options.size);
    context->setTimeout(options.timeout);
    context->connectFullMesh(*store, c->device_);
    c->context_ = std::move(context);
  } catch (const std::exception& e) {
    return GlooExceptionToStatus(
        e, absl::StrCat("connecting rank ", options.rank, " of ", options.size,
                        " on ", options.address));
  }
  return c;
}

GlooCollective::~GlooCollective() = default;

absl::Status GlooCollective::AllreduceAverage(
    absl::Span<const absl::Span<float>> buffers) {
  if (broken_) {
    return absl::FailedPreconditionError(
        "the collective failed earlier; its replicas are out of step");
  }
  if (size_ == 1) return absl::OkStatus();
  for (const absl::Span<float>& b : buffers) {
    if (b.empty()) continue;
    try {
      if (b.data() != algorithm_data_ || b.size() != algorithm_size_) {
        algorithm_.reset();
        algorithm_ = std::make_unique<gloo::AllreduceHalvingDoubling<float>>(
            context_, std::vector<float*>{b.data()},
            static_cast<int>(b.size()));
        algorithm_data_ = b.data();
        algorithm_size_ = b.size();
      }
      algorithm_->run();
    } catch (const std::exception& e) {
      broken_ = true;
      return GlooExceptionToStatus(e, absl::StrCat("allreduce of ", b.size(),
                                                   " floats on rank ", rank_));
    }
    const float inv = 1.0f / static_cast<float>(size_);
    for (float& v : b) v *= inv;
  }
  return absl::OkStatus();
}

}  // namespace nnlab::server

#include "server/cluster/grpc_store.h"

#include <utility>

#include "gloo/common/error.h"

namespace nnlab::server {
namespace {

// Room for the RPC itself on top of the server-side wait.
constexpr std::chrono::milliseconds kRpcSlack(5000);

void Prepare(grpc::ClientContext* ctx, const std::string& token,
             std::chrono::milliseconds deadline) {
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
}

}  // namespace

GrpcStore::GrpcStore(std::shared_ptr<grpc::Channel> channel, std::string token,
                     std::string prefix, std::chrono::milliseconds timeout)
    : stub_(v1::ClusterService::NewStub(std::move(channel))),
      token_(std::move(token)),
      prefix_(std::move(prefix)),
      timeout_(timeout) {}

void GrpcStore::set(const std::string& key, const std::vector<char>& data) {
  grpc::ClientContext ctx;
  Prepare(&ctx, token_, kRpcSlack);
  v1::StoreSetRequest req;
  req.set_key(prefix_ + key);
  req.set_value(std::string(data.begin(), data.end()));
  v1::StoreSetResponse resp;
  const grpc::Status s = stub_->StoreSet(&ctx, req, &resp);
  if (!s.ok()) {
    GLOO_THROW_IO_EXCEPTION("rendezvous StoreSet ", req.key(), ": ",
                            s.error_message());
  }
}

std::string GrpcStore::Get(const std::string& key,
                           std::chrono::milliseconds wait) {
  grpc::ClientContext ctx;
  Prepare(&ctx, token_, wait + kRpcSlack);
  v1::StoreGetRequest req;
  req.set_key(prefix_ + key);
  req.set_wait_ms(wait.count());
  v1::StoreGetResponse resp;
  const grpc::Status s = stub_->StoreGet(&ctx, req, &resp);
  if (!s.ok()) {
    GLOO_THROW_IO_EXCEPTION("rendezvous StoreGet ", req.key(), ": ",
                            s.error_message());
  }
  return std::move(*resp.mutable_value());
}

std::vector<char> GrpcStore::get(const std::string& key) {
  const std::string v = Get(key, timeout_);
  return std::vector<char>(v.begin(), v.end());
}

void GrpcStore::wait(const std::vector<std::string>& keys) {
  wait(keys, timeout_);
}

void GrpcStore::wait(const std::vector<std::string>& keys,
                     const std::chrono::milliseconds& timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (const std::string& key : keys) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    Get(key, std::max(left, std::chrono::milliseconds(0)));
  }
}

void LocalStore::set(const std::string& key, const std::vector<char>& data) {
  absl::Status s =
      store_->Set(prefix_ + key, std::string(data.begin(), data.end()));
  if (!s.ok()) GLOO_THROW_IO_EXCEPTION("rendezvous set: ", s.ToString());
}

std::vector<char> LocalStore::get(const std::string& key) {
  absl::StatusOr<std::string> v =
      store_->Get(prefix_ + key, absl::FromChrono(timeout_));
  if (!v.ok())
    GLOO_THROW_IO_EXCEPTION("rendezvous get: ", v.status().ToString());
  return std::vector<char>(v->begin(), v->end());
}

void LocalStore::wait(const std::vector<std::string>& keys) {
  wait(keys, timeout_);
}

void LocalStore::wait(const std::vector<std::string>& keys,
                      const std::chrono::milliseconds& timeout) {
  const absl::Time end = absl::Now() + absl::FromChrono(timeout);
  for (const std::string& key : keys) {
    absl::StatusOr<std::string> v =
        store_->Get(prefix_ + key, end - absl::Now());
    if (!v.ok()) {
      GLOO_THROW_IO_EXCEPTION("rendezvous wait: ", v.status().ToString());
    }
  }
}

}  // namespace nnlab::server

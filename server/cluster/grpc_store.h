// Gloo's rendezvous::Store over the coordinator's ClusterService
// (StoreSet / StoreGet), so a cluster needs no extra rendezvous service
// (no Redis, no shared file system). Keys are prefixed per job attempt, so
// attempts never see each other's addresses.
//
// Gloo's Store interface reports failure only by throwing: this class
// throws gloo::IoException when an RPC fails or a wait times out, and
// GlooCollective::Create (the only caller) catches it. That is the one
// place nnlab code throws. Thread-compatible.
#ifndef NNLAB_SERVER_CLUSTER_GRPC_STORE_H_
#define NNLAB_SERVER_CLUSTER_GRPC_STORE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gloo/rendezvous/store.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/cluster.grpc.pb.h"
#include "server/cluster/rendezvous_store.h"

namespace nnlab::server {

class GrpcStore final : public gloo::rendezvous::Store {
 public:
  // `token`: the cluster's bearer token (empty: none). `timeout` bounds
  // each wait for a key that is not yet set.
  GrpcStore(std::shared_ptr<grpc::Channel> channel, std::string token,
            std::string prefix, std::chrono::milliseconds timeout);

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  std::string Get(const std::string& key, std::chrono::milliseconds wait);

  std::unique_ptr<v1::ClusterService::Stub> stub_;
  std::string token_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

// The same Store for rank 0, which runs inside the coordinator: straight
// to its RendezvousStore, no RPC. Throws like GrpcStore.
class LocalStore final : public gloo::rendezvous::Store {
 public:
  LocalStore(RendezvousStore* store, std::string prefix,
             std::chrono::milliseconds timeout)
      : store_(store), prefix_(std::move(prefix)), timeout_(timeout) {}

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  RendezvousStore* store_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CLUSTER_GRPC_STORE_H_

// The Gloo collective on loopback: ranks (threads of this process) meet
// through a real ClusterService (GrpcStore over a gRPC server on
// loopback), connect Gloo's TCP transport on 127.0.0.1 and average their
// buffers; 2, 3 and 4 ranks. Faults stay bounded: a peer that never comes,
// one that dies, one that stalls, a wrong token; wildcard addresses are
// refused. Also the store and membership rules behind ClusterService.
#include "server/cluster/gloo_collective.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/cluster/cluster_service.h"
#include "server/cluster/grpc_store.h"
#include "server/cluster/membership.h"
#include "server/cluster/rendezvous_store.h"
#include "server/log.h"

namespace nnlab::server {
namespace {

using std::chrono::milliseconds;

constexpr char kToken[] = "cluster-token";

// A ClusterService alone on a loopback port.
class Coordinator {
 public:
  explicit Coordinator(absl::Duration heartbeat = absl::Seconds(1))
      : members_(Self(), heartbeat), service_(&context_, &members_, &store_) {
    context_.token = kToken;
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                       &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
  }
  ~Coordinator() { server_->Shutdown(std::chrono::system_clock::now()); }

  std::shared_ptr<grpc::Channel> Channel() const {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                               grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<v1::ClusterService::Stub> Stub() const {
    return v1::ClusterService::NewStub(Channel());
  }
  RendezvousStore& store() { return store_; }

 private:
  static v1::Member Self() {
    v1::Member m;
    m.set_member_id("coordinator");
    m.set_address("127.0.0.1:1");
    m.set_collective_address("127.0.0.1");
    return m;
  }
  ServiceContext context_;
  RendezvousStore store_;
  Membership members_;
  ClusterServiceImpl service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

absl::StatusOr<std::unique_ptr<GlooCollective>> Connect(
    const Coordinator& c, int rank, int size, const std::string& prefix,
    milliseconds timeout = milliseconds(5000),
    const std::string& token = kToken) {
  GrpcStore store(c.Channel(), token, prefix, timeout);
  GlooCollective::Options o;
  o.rank = rank;
  o.size = size;
  o.address = "127.0.0.1";
  o.timeout = timeout;
  return GlooCollective::Create(o, &store);
}

// Runs fn(rank) on `size` threads.
template <typename Fn>
void OnRanks(int size, Fn fn) {
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back([&fn, r] { fn(r); });
  for (std::thread& t : threads) t.join();
}

class GlooCollectiveTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { SetQuietLogs(true); }
};

TEST_P(GlooCollectiveTest, AveragesOverRanksStepAfterStep) {
  const int size = GetParam();
  Coordinator coordinator;
  std::vector<std::vector<float>> results(size);
  std::vector<absl::Status> status(size);
  OnRanks(size, [&](int rank) {
    auto c = Connect(coordinator, rank, size, "avg/");
    if (!c.ok()) {
      status[rank] = c.status();
      return;
    }
    EXPECT_EQ((*c)->rank(), rank);
    EXPECT_EQ((*c)->size(), size);
    // One buffer reused over steps, as the trainer does; 10001 floats
    // (odd, so halving-doubling's blocks are uneven).
    std::vector<float> buf(10001);
    for (int step = 0; step < 3; ++step) {
      for (size_t i = 0; i < buf.size(); ++i)
        buf[i] = float(rank * 10 + step + i % 7);
      const absl::Span<float> s(buf);
      status[rank] = (*c)->AllreduceAverage(absl::MakeConstSpan(&s, 1));
      if (!status[rank].ok()) return;
    }
    results[rank] = buf;
  });
  for (int r = 0; r < size; ++r) ASSERT_TRUE(status[r].ok()) << status[r];
  // Mean of rank * 10 + 2 + i % 7 over ranks: 5 * (size - 1) + 2 + i % 7.
  for (int r = 0; r < size; ++r) {
    for (size_t i = 0; i < results[r].size(); ++i) {
      ASSERT_FLOAT_EQ(results[r][i], 5.0f * (size - 1) + 2 + i % 7)
          << "rank " << r << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, GlooCollectiveTest, ::testing::Values(2, 3, 4));

TEST(GlooFaultTest, PeerThatNeverComesFailsWithinTheTimeout) {
  SetQuietLogs(true);
  Coordinator coordinator;
  const absl::Time start = absl::Now();
  auto c = Connect(coordinator, 0, 2, "alone/", milliseconds(1000));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().code() == absl::StatusCode::kDeadlineExceeded ||
              c.status().code() == absl::StatusCode::kUnavailable)
      << c.status();
  EXPECT_LT(took, absl::Seconds(10));
}

TEST(GlooFaultTest, PeerThatDiesOrStallsFailsTheAllreduceWithinTheTimeout) {
  SetQuietLogs(true);
  for (const bool dies : {true, false}) {
    Coordinator coordinator;
    absl::Status rank0;
    absl::Duration took;
    OnRanks(2, [&](int rank) {
      auto c = Connect(coordinator, rank, 2, dies ? "dies/" : "stalls/",
                       milliseconds(1500));
      ASSERT_TRUE(c.ok()) << c.status();
      std::vector<float> buf(1000, 1.0f);
      const absl::Span<float> s(buf);
      ASSERT_TRUE((*c)->AllreduceAverage(absl::MakeConstSpan(&s, 1)).ok());
      if (rank == 1) {
        if (dies) {
          c->reset();  // Closes its sockets mid-run.
        } else {
          absl::SleepFor(absl::Seconds(4));  // Never joins the next step.
        }
        return;
      }
      const absl::Time start = absl::Now();
      rank0 = (*c)->AllreduceAverage(absl::MakeConstSpan(&s, 1));
      took = absl::Now() - start;
      // Unusable afterwards, and says so.
      EXPECT_EQ((*c)->AllreduceAverage(absl::MakeConstSpan(&s, 1)).code(),
                absl::StatusCode::kFailedPrecondition);
    });
    EXPECT_FALSE(rank0.ok()) << (dies ? "dies" : "stalls");
    EXPECT_TRUE(rank0.code() == absl::StatusCode::kUnavailable ||
                rank0.code() == absl::StatusCode::kDeadlineExceeded)
        << rank0;
    EXPECT_LT(took, absl::Seconds(4)) << (dies ? "dies" : "stalls");
  }
}

TEST(GlooFaultTest, WrongTokenCannotRendezvous) {
  SetQuietLogs(true);
  Coordinator coordinator;
  auto c = Connect(coordinator, 0, 2, "tok/", milliseconds(1000), "wrong");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("token"), std::string::npos)
      << c.status();
  EXPECT_EQ(coordinator.store().size(), 0u);
}

TEST(GlooAddressTest, WildcardsNeedConsentAndNamesAreRefused) {
  EXPECT_TRUE(CheckCollectiveAddress("127.0.0.1", false).ok());
  EXPECT_TRUE(CheckCollectiveAddress("::1", false).ok());
  EXPECT_EQ(CheckCollectiveAddress("0.0.0.0", false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckCollectiveAddress("::", false).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckCollectiveAddress("0.0.0.0", true).ok());
  EXPECT_EQ(CheckCollectiveAddress("localhost", true).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckCollectiveAddress("127.0.0.1:5000", true).code(),
            absl::StatusCode::kInvalidArgument);
  GlooCollective::Options o;
  o.rank = 2;
  o.size = 2;
  EXPECT_EQ(GlooCollective::Create(o, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RendezvousStoreTest, WaitsBoundsAndErases) {
  RendezvousStore store;
  EXPECT_EQ(store.Get("a", absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  std::thread setter([&] {
    absl::SleepFor(absl::Milliseconds(100));
    EXPECT_TRUE(store.Set("job/a", "1").ok());
  });
  auto got = store.Get("job/a", absl::Seconds(10));
  setter.join();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "1");
  EXPECT_EQ(store.Set("", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Set(std::string(300, 'k'), "x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Set("k", std::string(70000, 'v')).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(store.Set("other", "2").ok());
  store.ErasePrefix("job/");
  EXPECT_EQ(store.size(), 1u);
}

grpc::Status Call(v1::ClusterService::Stub* stub, const std::string& token,
                  const v1::JoinRequest& req, v1::JoinResponse* resp) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  return stub->Join(&ctx, req, resp);
}

grpc::Status Beat(v1::ClusterService::Stub* stub, const std::string& id) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
  v1::HeartbeatRequest req;
  req.set_member_id(id);
  v1::HeartbeatResponse resp;
  return stub->Heartbeat(&ctx, req, &resp);
}

std::vector<v1::Member> List(v1::ClusterService::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kToken);
  v1::ListMembersResponse resp;
  EXPECT_TRUE(stub->ListMembers(&ctx, {}, &resp).ok());
  return {resp.members().begin(), resp.members().end()};
}

TEST(MembershipTest, JoinTwiceWrongTokenExpiryAndRejoin) {
  SetQuietLogs(true);
  Coordinator coordinator(absl::Milliseconds(100));
  auto stub = coordinator.Stub();
  v1::JoinRequest req;
  req.set_address("127.0.0.1:7001");
  req.set_collective_address("127.0.0.1");
  req.set_max_concurrent_jobs(2);
  v1::JoinResponse resp;
  EXPECT_EQ(Call(stub.get(), "wrong", req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(Call(stub.get(), kToken, req, &resp).ok());
  EXPECT_EQ(resp.heartbeat_interval_ms(), 100);
  const std::string id = resp.member_id();
  EXPECT_EQ(Call(stub.get(), kToken, req, &resp).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  v1::JoinRequest bad = req;
  bad.set_address("127.0.0.1:7002");
  bad.set_collective_address("0.0.0.0.1");
  EXPECT_EQ(Call(stub.get(), kToken, bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Beat(stub.get(), "worker-99").error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Beat(stub.get(), id).ok());
  auto members = List(stub.get());
  ASSERT_EQ(members.size(), 2u);
  EXPECT_TRUE(members[0].coordinator());
  EXPECT_EQ(members[1].member_id(), id);
  EXPECT_TRUE(members[1].alive());
  EXPECT_EQ(members[1].max_concurrent_jobs(), 2);
  // Silent for more than 3 intervals: noticed, and must join again.
  absl::SleepFor(absl::Milliseconds(500));
  members = List(stub.get());
  EXPECT_FALSE(members[1].alive());
  EXPECT_EQ(Beat(stub.get(), id).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Call(stub.get(), kToken, req, &resp).ok());
  EXPECT_NE(resp.member_id(), id);
  EXPECT_EQ(List(stub.get()).size(), 2u);
}

}  // namespace
}  // namespace nnlab::server

// nnlab cluster list: the members of the server's cluster (the coordinator
// first), where their gRPC and Gloo transports listen, and whether they
// are alive.
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "client/cli/common.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/cluster.grpc.pb.h"

namespace nnlab::cli {
namespace {

std::string MembersTable(const v1::ListMembersResponse& r) {
  std::string out =
      absl::StrFormat("%-12s %-22s %-16s %-6s %-5s %s\n", "MEMBER", "ADDRESS",
                      "COLLECTIVE", "STATE", "JOBS", "LAST SEEN");
  for (const v1::Member& m : r.members()) {
    out += absl::StrFormat(
        "%-12s %-22s %-16s %-6s %-5s %s\n", m.member_id(),
        m.coordinator() ? "(this server)" : m.address(), m.collective_address(),
        m.alive() ? "alive" : "gone",
        m.coordinator() ? "-"
                        : absl::StrFormat("%d/%d", m.running_jobs(),
                                          m.max_concurrent_jobs()),
        m.coordinator()
            ? "-"
            : absl::StrFormat("%.1fs ago", m.last_seen_ms_ago() / 1000.0));
  }
  return out;
}

}  // namespace

void AddClusterCommands(CLI::App& app, Cli& cli) {
  CLI::App* cluster = app.add_subcommand("cluster", "The server's cluster");
  cluster->require_subcommand(1);
  CLI::App* list = cluster->add_subcommand(
      "list", "List the members: the coordinator and the workers that joined");
  list->callback([&cli] {
    cli.run = [&g = cli.globals] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto stub = v1::ClusterService::NewStub((*client)->channel());
      grpc::ClientContext ctx;
      (*client)->PrepareContext(&ctx, /*deadline=*/true);
      v1::ListMembersResponse resp;
      const grpc::Status s = stub->ListMembers(&ctx, {}, &resp);
      absl::StatusOr<v1::ListMembersResponse> r = resp;
      if (!s.ok()) {
        r = absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                         s.error_message());
      }
      return PrintOr<v1::ListMembersResponse>(r, g, MembersTable);
    };
  });
}

}  // namespace nnlab::cli

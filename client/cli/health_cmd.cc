// nnlab health: the grpc.health.v1 check; exit 0 only when serving.
#include <cstdio>
#include <memory>
#include <string>

#include "client/cli/common.h"

namespace nnlab::cli {

void AddHealthCommand(CLI::App& app, Cli& cli) {
  auto service = std::make_shared<std::string>();
  CLI::App* health =
      app.add_subcommand("health", "Ask whether the server is serving");
  health->add_option("--service", *service,
                     "Service name (default: the server)");
  health->callback([&cli, service] {
    cli.run = [&g = cli.globals, service] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto s = (*client)->Health(*service);
      if (!s.ok()) return Fail(s.status());
      if (g.json) {
        std::printf("{\"status\":\"%s\"}\n", HealthStatusName(*s));
      } else {
        std::printf("%s\n", HealthStatusName(*s));
      }
      return *s == HealthStatus::kServing ? kExitOk : kExitJobFailed;
    };
  });
}

}  // namespace nnlab::cli

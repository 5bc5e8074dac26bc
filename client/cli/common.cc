#include "client/cli/common.h"

#include <cstdio>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/time.h"
#include "client/cli/spec.h"

namespace nnlab::cli {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "nnlab: %s\n", OneLineError(s).c_str());
  return ExitCodeFor(s);
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "nnlab: %s\n", message.c_str());
  return kExitUsage;
}

void PrintJson(const google::protobuf::Message& m) {
  std::printf("%s\n", ToJsonLine(m).c_str());
}

absl::StatusOr<std::unique_ptr<Client>> Connect(const Globals& g) {
  ClientOptions o;
  o.server = g.server;
  o.token = g.token;
  if (!g.token_file.empty()) {
    auto t = ReadFileToString(g.token_file);
    if (!t.ok()) return absl::InvalidArgumentError(t.status().message());
    o.token = std::string(absl::StripAsciiWhitespace(*t));
  }
  o.tls = g.tls;
  o.tls_ca_file = g.tls_ca;
  o.tls_cert_file = g.tls_cert;
  o.tls_key_file = g.tls_key;
  o.tls_server_name = g.tls_server_name;
  o.deadline = absl::Seconds(g.timeout_seconds);
  return Client::Create(std::move(o));
}

CLI::App* JobCommand(CLI::App* parent, const std::string& name,
                     const std::string& help, std::string* job_id) {
  CLI::App* cmd = parent->add_subcommand(name, help);
  cmd->add_option("JOB", *job_id, "Job id")->required();
  return cmd;
}

}  // namespace nnlab::cli

// nnlab: the command-line client of an nnlabd server.
//
//   nnlab [--server HOST:PORT] [--token T] [--json] COMMAND ...
//
// The global flags and the order of the command groups live here; each
// group is in its own *_cmd.cc (see common.h, also for the exit codes).
#include <grpc/support/log.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "client/cli/common.h"

namespace nnlab::cli {
namespace {

// gRPC logs transport errors (failed TLS handshakes, refused connections)
// to stderr; the CLI reports the call's status in one line instead.
// GRPC_VERBOSITY set in the environment restores gRPC's own logging.
void QuietGrpcLogs(gpr_log_func_args*) {}

void AddGlobalFlags(CLI::App& app, Globals& g) {
  app.add_option("--server", g.server, "Server address HOST:PORT")
      ->envname("NNLAB_SERVER")
      ->capture_default_str();
  CLI::Option* token =
      app.add_option("--token", g.token, "Bearer token sent with every call")
          ->envname("NNLAB_TOKEN");
  app.add_option("--token_file", g.token_file,
                 "Read the bearer token from a file")
      ->excludes(token);
  app.add_flag("--tls", g.tls,
               "Connect with TLS (system roots unless --tls_ca)");
  app.add_option("--tls_ca", g.tls_ca,
                 "PEM file of root certificates for the server");
  app.add_option("--tls_cert", g.tls_cert,
                 "PEM client certificate (mutual TLS)");
  app.add_option("--tls_key", g.tls_key, "PEM client private key (mutual TLS)");
  app.add_option("--tls_server_name", g.tls_server_name,
                 "Name to verify the server certificate against");
  app.add_flag("--json", g.json,
               "Print results as protobuf JSON, one object per line");
  app.add_option("--timeout", g.timeout_seconds,
                 "Deadline of each call in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

}  // namespace

int Main(int argc, char** argv) {
  if (std::getenv("GRPC_VERBOSITY") == nullptr)
    gpr_set_log_function(QuietGrpcLogs);
  CLI::App app{
      "nnlab: define, train, watch and query neural networks on an nnlabd "
      "server."};
  app.name("nnlab");
  app.fallthrough();  // global flags may follow the subcommand
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 success; 1 the job failed or was cancelled (or another "
      "server-side failure); 2 usage error (bad flags or files, an argument "
      "the server rejects, an unknown id); 3 server unreachable, not "
      "answering in time, or unauthenticated.");

  Cli cli;
  AddGlobalFlags(app, cli.globals);
  AddHealthCommand(app, cli);
  AddModelsCommands(app, cli);
  AddDatasetsCommands(app, cli);
  AddJobsCommands(app, cli);
  AddInferCommand(app, cli);
  AddSampleCommand(app, cli);
  AddPlotCommand(app, cli);
  AddPlotTimestepsCommand(app, cli);
  AddClusterCommands(app, cli);
  AddSweepCommands(app, cli);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0.
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (!cli.run) return Usage("no command given (see --help)");
  return cli.run();
}

}  // namespace nnlab::cli

int main(int argc, char** argv) { return nnlab::cli::Main(argc, argv); }

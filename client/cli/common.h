// What the `nnlab` commands share: the global flags, the connection they
// make from them, the exit codes and the output helpers, and the
// registration functions through which each command group adds itself to
// the CLI11 app (one file per group: health_cmd.cc, models_cmd.cc, ...).
//
// Exit codes: 0 success; 1 the job failed or was cancelled (or another
// server-side failure); 2 usage error (bad flags, unreadable or malformed
// file, an argument the server rejects or an unknown id); 3 the server is
// unreachable, not answering in time, or refuses the credentials.
#ifndef NNLAB_CLIENT_CLI_COMMON_H_
#define NNLAB_CLIENT_CLI_COMMON_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/format.h"
#include "client/client.h"
#include "google/protobuf/message.h"

namespace nnlab::cli {

constexpr int kExitOk = 0;
constexpr int kExitJobFailed = 1;
constexpr int kExitUsage = 2;

// The flags before (or after) the command, filled in by parsing.
struct Globals {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string token_file;
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  bool json = false;
  double timeout_seconds = 30;
};

// What a command group registers against. A subcommand's CLI11 callback
// sets `run`, which Main calls once the whole command line has parsed.
// Flag storage a group allocates must outlive parsing: groups keep it in
// shared_ptrs captured by their callbacks.
struct Cli {
  Globals globals;
  std::function<int()> run;
};

// Prints "nnlab: <one-line error>" to stderr; returns the status's exit code.
int Fail(const absl::Status& s);
// Prints "nnlab: <message>" to stderr; returns kExitUsage.
int Usage(const std::string& message);
// The message as one line of protobuf JSON on stdout.
void PrintJson(const google::protobuf::Message& m);

// A client for the global flags (reads --token_file; InvalidArgument if it
// cannot).
absl::StatusOr<std::unique_ptr<Client>> Connect(const Globals& g);

// The result as JSON (--json) or as `human`'s text; the failure otherwise.
template <typename T>
int PrintOr(const absl::StatusOr<T>& r, const Globals& g,
            const std::function<std::string(const T&)>& human) {
  if (!r.ok()) return Fail(r.status());
  if (g.json) {
    PrintJson(*r);
  } else {
    std::printf("%s", human(*r).c_str());
  }
  return kExitOk;
}

// The job command pattern: a subcommand with a positional, required JOB.
CLI::App* JobCommand(CLI::App* parent, const std::string& name,
                     const std::string& help, std::string* job_id);

// The command groups, in the order `nnlab --help` lists them.
void AddHealthCommand(CLI::App& app, Cli& cli);     // health
void AddModelsCommands(CLI::App& app, Cli& cli);    // models ...
void AddDatasetsCommands(CLI::App& app, Cli& cli);  // datasets ...
// train, watch, jobs list/get/cancel/pause/resume.
void AddJobsCommands(CLI::App& app, Cli& cli);
void AddInferCommand(CLI::App& app, Cli& cli);   // infer
void AddSampleCommand(CLI::App& app, Cli& cli);  // sample
void AddPlotCommand(CLI::App& app, Cli& cli);    // plot
// plot-timesteps
void AddPlotTimestepsCommand(CLI::App& app, Cli& cli);
void AddClusterCommands(CLI::App& app, Cli& cli);  // cluster list
// plot with several jobs or a sweep (plot_overlay.cc): `ids` are job or
// sweep ids; `layer` names the layer whose learning speed is drawn.
int RunOverlayPlot(const Globals& g, const std::vector<std::string>& ids,
                   const std::string& layer, const std::string& out);
// sweep --spec FILE, sweep list/get/cancel/pause/resume (sweep_cmd.cc).
void AddSweepCommands(CLI::App& app, Cli& cli);

// The whole CLI: builds the app, parses argv, runs the command; returns
// the process exit code.
int Main(int argc, char** argv);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_COMMON_H_

// End-to-end: the real nnlab binary against the real nnlabd on a loopback
// port. Quick cases only (no full training runs; see cli_e2e_long_test.cc).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nnlab/v1/inference.pb.h"
#include "nnlab/v1/model.pb.h"
#include "nnlab/v1/sweep.pb.h"
#include "nnlab/v1/training.pb.h"
#include "tests/client/cli_test_util.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;
using testing::Lines;
using testing::RunProcess;
using testing::RunResult;
using testing::ServerProcess;
using testing::SourcePath;
using ::testing::StartsWith;

const char kMlp[] = "examples/mnist_mlp_100.textproto";

RunResult Cli(const std::string& server, std::vector<std::string> args,
              const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), {NNLAB_CLI_PATH, "--server", server});
  return RunProcess(args, env);
}

// Errors are one line on stderr: "nnlab: CODE: message".
void ExpectOneLineError(const RunResult& r, const std::string& code) {
  std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_THAT(lines[0], StartsWith("nnlab: " + code + ": "));
}

TEST(CliTest, UnreachableServerExits3) {
  // Port 1 on loopback: nothing listens there.
  RunResult r = Cli("127.0.0.1:1", {"models", "list"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  ExpectOneLineError(r, "UNAVAILABLE");
  EXPECT_EQ(r.out, "");

  r = Cli("127.0.0.1:1", {"health"});
  EXPECT_EQ(r.exit_code, 3);
  // NNLAB_SERVER is the default address.
  r = RunProcess({NNLAB_CLI_PATH, "jobs", "list"},
                 {"NNLAB_SERVER=127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 3);
  ExpectOneLineError(r, "UNAVAILABLE");
}

TEST(CliTest, UsageErrorsExit2) {
  RunResult r =
      RunProcess({NNLAB_CLI_PATH, "train", "--model", "m"});  // no --dataset
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--dataset"));
  r = RunProcess({NNLAB_CLI_PATH, "train", "--model", "m", "--dataset", "mnist",
                  "--optimizer", "sgdd"});
  EXPECT_EQ(r.exit_code, 2);
  r = RunProcess({NNLAB_CLI_PATH, "plot", "j1", "--out", "x.jpg"});
  EXPECT_EQ(r.exit_code, 2);
  r = RunProcess({NNLAB_CLI_PATH, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"health", "models", "datasets", "train", "watch",
                          "jobs", "infer", "sample", "plot"}) {
    EXPECT_THAT(r.out, HasSubstr(cmd));
  }
  r = RunProcess({NNLAB_CLI_PATH, "models", "create", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("--spec"));
}

TEST(CliTest, BadSpecFileExits2WithLineAndColumn) {
  const std::string path = ::testing::TempDir() + "/bad_spec.textproto";
  {
    std::ofstream f(path);
    f << "name: \"bad\"\ninput_shape: [784]\nlayers { dense { units: 10 } }\n"
         "layers { sigmoidd {} }\n";
  }
  // The file is checked before any connection is made.
  RunResult r = Cli("127.0.0.1:1", {"models", "create", "--spec", path});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "INVALID_ARGUMENT");
  EXPECT_THAT(r.err, HasSubstr(path + ":4:"));
  EXPECT_THAT(r.err, HasSubstr("sigmoidd"));

  r = Cli("127.0.0.1:1",
          {"models", "create", "--spec", "/nonexistent.textproto"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "NOT_FOUND");
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()) << server_.log(); }
  RunResult Nnlab(std::vector<std::string> args) {
    return Cli(server_.address(), std::move(args));
  }
  // Creates the example MLP and returns its id.
  std::string CreateMlp() {
    RunResult r =
        Nnlab({"--json", "models", "create", "--spec", SourcePath(kMlp)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    v1::Model m;
    EXPECT_TRUE(testing::FromJson(r.out, &m)) << r.out;
    return m.model_id();
  }
  ServerProcess server_;
};

TEST_F(ServerTest, HealthModelsAndDatasets) {
  RunResult r = Nnlab({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");

  // --json: exactly one object, the model, with its id and layers.
  r = Nnlab({"--json", "models", "create", "--spec", SourcePath(kMlp), "--id",
             "mlp"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u);
  v1::Model m;
  ASSERT_TRUE(testing::FromJson(r.out, &m)) << r.out;
  EXPECT_EQ(m.model_id(), "mlp");
  EXPECT_EQ(m.parameter_count(), 784 * 100 + 100 + 100 * 10 + 10);
  EXPECT_THAT(r.out, HasSubstr("\"modelId\":\"mlp\""));

  // Human output names the model and its layers.
  r = Nnlab({"models", "get", "mlp"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out,
              StartsWith("model mlp \"mnist-mlp-100\": 79510 parameters"));
  EXPECT_THAT(r.out, HasSubstr("dense0.weight [100, 784]"));

  // Global flags may also follow the subcommand.
  r = Cli(server_.address(), {"models", "list", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u);

  r = Nnlab({"models", "create", "--spec", SourcePath(kMlp), "--id", "mlp"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "ALREADY_EXISTS");

  r = Nnlab({"models", "get", "nosuch"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "NOT_FOUND");

  r = Nnlab({"--json", "datasets", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  bool mnist = false;
  for (const std::string& line : Lines(r.out)) {
    v1::DatasetInfo d;
    ASSERT_TRUE(testing::FromJson(line, &d)) << line;
    if (d.dataset_id() == "mnist") {
      mnist = true;
      EXPECT_EQ(d.train_samples(), 8000);
      EXPECT_EQ(d.test_samples(), 2000);
    }
  }
  EXPECT_TRUE(mnist);

  r = Nnlab({"models", "delete", "mlp"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Nnlab({"models", "get", "mlp"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(ServerTest, ExportImportRoundTrip) {
  const std::string id = CreateMlp();
  const std::string file = ::testing::TempDir() + "/mlp.nnlab";
  RunResult r = Nnlab({"models", "export", id, "--out", file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nnlab({"--json", "models", "import", file, "--id", "copy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Model m;
  ASSERT_TRUE(testing::FromJson(Lines(r.out).back(), &m));
  EXPECT_EQ(m.model_id(), "copy");
  EXPECT_EQ(m.parameter_count(), 79510);

  // Same weights: the two models give the same outputs on the first five
  // test digits (local IDX files, through Infer)...
  const std::vector<std::string> digits = {
      "--images", SourcePath("data/mnist/digits-images-idx3-ubyte"),
      "--labels", SourcePath("data/mnist/digits-labels-idx1-ubyte"),
      "--offset", "8000",
      "--limit",  "5"};
  std::vector<std::string> args = {"--json", "infer", "--model", id};
  args.insert(args.end(), digits.begin(), digits.end());
  r = Nnlab(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  args = {"--json", "infer", "--model", "copy"};
  args.insert(args.end(), digits.begin(), digits.end());
  RunResult r2 = Nnlab(args);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  v1::InferResponse a, b;
  ASSERT_TRUE(testing::FromJson(Lines(r.out)[0], &a));
  ASSERT_TRUE(testing::FromJson(Lines(r2.out)[0], &b));
  ASSERT_EQ(a.outputs().data_size(), 50);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(a.outputs().data(i), b.outputs().data(i));
  // ... and the same loss on them evaluated by the server (--dataset), which
  // is the loss the local path computed from the logits.
  v1::EvalResult local, ea, eb;
  ASSERT_TRUE(testing::FromJson(Lines(r.out).back(), &local));
  r = Nnlab({"--json", "infer", "--model", id, "--dataset", "mnist:test",
             "--limit", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  ASSERT_TRUE(testing::FromJson(Lines(r.out)[0], &ea));
  r2 = Nnlab({"--json", "infer", "--model", "copy", "--dataset", "mnist:test",
              "--limit", "5"});
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  ASSERT_TRUE(testing::FromJson(Lines(r2.out)[0], &eb));
  EXPECT_EQ(ea.loss(), eb.loss());
  EXPECT_EQ(ea.accuracy(), eb.accuracy());
  EXPECT_NEAR(ea.loss(), local.loss(), 1e-5);
  EXPECT_EQ(ea.accuracy(), local.accuracy());
  EXPECT_GT(ea.loss(), 0);

  // The human line; the server's errors keep the usage exit code.
  r = Nnlab(
      {"infer", "--model", id, "--dataset", "mnist:test", "--offset", "1995"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex(
                         "accuracy [01]\\.[0-9]{4} \\([0-5]/5\\), loss "
                         "[0-9.]+, weights at step 0\n"));
  r = Nnlab(
      {"infer", "--model", id, "--dataset", "mnist:test", "--offset", "2000"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "INVALID_ARGUMENT");
  r = Nnlab({"infer", "--model", id, "--dataset", "nope"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "NOT_FOUND");
  r = Nnlab({"infer", "--model", id, "--dataset", "mnist:dev"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "INVALID_ARGUMENT");
  r = Nnlab({"infer", "--model", id, "--dataset", "mnist", "--top_k", "3"});
  EXPECT_EQ(r.exit_code, 2);
  std::remove(file.c_str());
}

TEST_F(ServerTest, CancelEndsTheJobAndWatchExits1) {
  const std::string id = CreateMlp();
  RunResult r = Nnlab({"--json", "train", "--model", id, "--dataset", "mnist",
                       "--epochs", "50", "--batch", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Job job;
  ASSERT_TRUE(testing::FromJson(r.out, &job)) << r.out;
  ASSERT_FALSE(job.job_id().empty());
  EXPECT_EQ(job.total_steps(), 50 * 1000);

  r = Nnlab({"jobs", "cancel", job.job_id()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(job.job_id()));

  // The stream of a cancelled job ends; watch reports it and exits 1.
  r = Nnlab({"watch", job.job_id()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("CANCELLED"));
  EXPECT_FALSE(absl::StrContains(r.out, "\x1b"));  // not a terminal

  r = Nnlab({"--json", "jobs", "get", job.job_id()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(testing::FromJson(r.out, &job));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_LT(job.step(), job.total_steps());

  r = Nnlab({"jobs", "cancel", job.job_id()});  // already ended
  EXPECT_EQ(r.exit_code, 1);
  ExpectOneLineError(r, "FAILED_PRECONDITION");

  r = Nnlab({"jobs", "list"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr(job.job_id()));
  EXPECT_THAT(r.out, HasSubstr("CANCELLED"));
}

// A tiny grid (2 learning rates x 2 seeds, two at once) on a small MLP:
// `nnlab sweep --spec` starts it, `--watch` prints the ranked table when it
// ends, --json gives the Sweep; a bad spec file is a one-line error.
// The lecture's comparisons as shipped: each spec (with its "@file" model
// values) starts every trial; cancelled at once, as a full run is long.
TEST_F(ServerTest, ShippedSweepSpecsStartEveryTrial) {
  const struct {
    const char* file;
    int trials;
  } specs[] = {{"examples/sweep_optimizers.textproto", 21},
               {"examples/sweep_vanishing_cures.textproto", 8}};
  for (const auto& spec : specs) {
    RunResult r = Nnlab({"--json", "sweep", "--spec", SourcePath(spec.file)});
    ASSERT_EQ(r.exit_code, 0) << spec.file << ": " << r.err;
    v1::Sweep sweep;
    ASSERT_TRUE(testing::FromJson(r.out, &sweep)) << r.out;
    EXPECT_EQ(sweep.trials_size(), spec.trials) << spec.file;
    r = Nnlab({"sweep", "cancel", sweep.sweep_id()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
}

TEST_F(ServerTest, SweepSpecRunsAndPrintsTheRankedTable) {
  const std::string path = ::testing::TempDir() + "/sweep.textproto";
  {
    std::ofstream f(path);
    f << R"(name: "tiny"
model { name: "tiny-mlp" input_shape: [784] layers { dense { units: 16 } }
        layers { relu {} } layers { dense { units: 10 } }
        loss: LOSS_SOFTMAX_CROSS_ENTROPY init: INIT_HE }
job { dataset: "mnist" epochs: 1 max_steps: 25 batch_size: 16
      eval_every_steps: 25 stats_every: -1 }
axes { field: "job.optimizer.learning_rate" values: ["0.1", "1e-9"] }
axes { field: "model.seed" values: ["1", "2"] }
max_concurrent: 2
)";
  }
  RunResult r = Nnlab({"sweep", "--spec", path, "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  // Not a terminal: progress lines, then the table once the sweep ends.
  std::vector<std::string> lines = Lines(r.out);
  size_t header = 0;
  while (header < lines.size() &&
         !absl::StartsWith(lines[header], "rank trial")) {
    ++header;
  }
  ASSERT_LT(header, lines.size()) << r.out;
  ASSERT_GE(header, 1u);
  EXPECT_THAT(lines[header - 1], HasSubstr("completed  4 trials  (at most 2"));
  ASSERT_EQ(lines.size(), header + 5) << r.out;  // One row per trial.
  std::vector<std::string> trials;
  double previous = 2;
  for (size_t i = header + 1; i < lines.size(); ++i) {
    std::vector<std::string> cols =
        absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    ASSERT_GE(cols.size(), 9u) << lines[i];
    EXPECT_EQ(cols[0], absl::StrCat(i - header)) << lines[i];  // rank
    trials.push_back(cols[1]);
    EXPECT_EQ(cols[2], "completed") << lines[i];
    double acc = 0;
    ASSERT_TRUE(absl::SimpleAtod(cols[3], &acc)) << lines[i];
    EXPECT_LE(acc, previous) << r.out;  // Best first.
    previous = acc;
    EXPECT_EQ(cols[4], "25");
    EXPECT_EQ(cols[5], "25/25");
    EXPECT_THAT(lines[i], HasSubstr(" learning_rate="));
    EXPECT_THAT(lines[i], HasSubstr(" seed="));
  }
  EXPECT_THAT(trials, ::testing::UnorderedElementsAre("0", "1", "2", "3"));
  // Learning rate 1e-9 learns nothing: those two trials rank last.
  EXPECT_THAT(lines[header + 3], HasSubstr("learning_rate=1e-9"));
  EXPECT_THAT(lines[header + 4], HasSubstr("learning_rate=1e-9"));

  // The sweep overlaid by nnlab plot: one legend entry per trial, naming
  // both settings (they differ between trials), in each panel.
  const std::vector<std::string> title =
      absl::StrSplit(lines[header - 1], ' ', absl::SkipEmpty());
  ASSERT_GE(title.size(), 2u);
  const std::string svg = ::testing::TempDir() + "/sweep_overlay.svg";
  r = Nnlab({"plot", title[1], "--out", svg});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(4 jobs)"));
  const std::string figure = testing::ReadAll(svg);
  for (const char* lr : {"0.1", "1e-9"}) {
    for (const char* seed : {"1", "2"}) {
      const std::string label = absl::StrCat(
          ">job.optimizer.learning_rate=", lr, " model.seed=", seed, "<");
      int count = 0;
      for (size_t at = figure.find(label); at != std::string::npos;
           at = figure.find(label, at + 1)) {
        ++count;
      }
      EXPECT_EQ(count, 2) << label;  // Loss and test accuracy panels.
    }
  }
  std::remove(svg.c_str());

  // --json: one Sweep object. Its trials run 10,000 epochs (they cannot
  // end before the cancel).
  const std::string endless = ::testing::TempDir() + "/endless.textproto";
  {
    std::string text = testing::ReadAll(path);
    const size_t at = text.find("epochs: 1 max_steps: 25");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 23, "epochs: 10000");
    std::ofstream f(endless);
    f << text;
  }
  r = Nnlab({"--json", "sweep", "--spec", endless});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 1u) << r.out;
  v1::Sweep sweep;
  ASSERT_TRUE(testing::FromJson(r.out, &sweep)) << r.out;
  EXPECT_EQ(sweep.trials_size(), 4);
  EXPECT_EQ(sweep.spec().name(), "tiny");
  EXPECT_EQ(sweep.state(), v1::SWEEP_STATE_RUNNING);
  r = Nnlab({"sweep", "cancel", sweep.sweep_id()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(sweep.sweep_id() + "  cancelled"));
  std::remove(endless.c_str());
  r = Nnlab({"sweep", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Lines(r.out).size(), 2u) << r.out;

  // A spec that does not parse, and one the server refuses.
  const std::string bad = ::testing::TempDir() + "/bad_sweep.textproto";
  {
    std::ofstream f(bad);
    f << "name: \"bad\"\naxes { feild: \"job.batch_size\" }\n";
  }
  r = Nnlab({"sweep", "--spec", bad});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  ExpectOneLineError(r, "INVALID_ARGUMENT");
  EXPECT_THAT(r.err, HasSubstr(bad + ":2:"));
  EXPECT_THAT(r.err, HasSubstr("feild"));
  EXPECT_EQ(r.out, "");
  {
    std::ofstream f(bad);
    f << "name: \"bad\"\nmodel { input_shape: [4] layers { relu {} } }\n"
         "job { dataset: \"mnist\" }\n"
         "axes { field: \"job.nope\" values: \"1\" }\n";
  }
  r = Nnlab({"sweep", "--spec", bad});
  EXPECT_EQ(r.exit_code, 2) << r.out;
  ExpectOneLineError(r, "INVALID_ARGUMENT");
  EXPECT_THAT(r.err, HasSubstr("job.nope"));
  r = Nnlab({"sweep", "--spec", "/nonexistent.textproto"});
  EXPECT_EQ(r.exit_code, 2);
  ExpectOneLineError(r, "NOT_FOUND");
  std::remove(path.c_str());
  std::remove(bad.c_str());
}

TEST(CliTokenTest, TokenIsRequiredAndAccepted) {
  const std::string token_file = ::testing::TempDir() + "/token";
  {
    std::ofstream f(token_file);
    f << "s3cret\n";
  }
  ServerProcess server({"--token_file=" + token_file});
  ASSERT_TRUE(server.ok()) << server.log();
  RunResult r = Cli(server.address(), {"models", "list"});
  EXPECT_EQ(r.exit_code, 3);
  ExpectOneLineError(r, "UNAUTHENTICATED");
  r = Cli(server.address(), {"--token", "wrong", "models", "list"});
  EXPECT_EQ(r.exit_code, 3);
  r = Cli(server.address(), {"--token", "s3cret", "models", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli(server.address(), {"--token_file", token_file, "models", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Cli(server.address(), {"models", "list"}, {"NNLAB_TOKEN=s3cret"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::remove(token_file.c_str());
}

}  // namespace
}  // namespace nnlab

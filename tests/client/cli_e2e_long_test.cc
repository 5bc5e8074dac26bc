// End-to-end training runs through the real nnlab binary and nnlabd:
// train --watch --json on MNIST, infer, plot, and the live view on a
// pseudo-terminal.
#include <png.h>
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <set>
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

class TrainingE2ETest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()) << server_.log(); }
  RunResult Nnlab(std::vector<std::string> args) {
    args.insert(args.begin(), {NNLAB_CLI_PATH, "--server", server_.address()});
    return RunProcess(args);
  }
  v1::Model Create(const std::string& spec) {
    RunResult r =
        Nnlab({"--json", "models", "create", "--spec", SourcePath(spec)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    v1::Model m;
    EXPECT_TRUE(testing::FromJson(r.out, &m)) << r.out;
    return m;
  }
  ServerProcess server_;
};

TEST_F(TrainingE2ETest, TrainWatchJsonInferAndPlot) {
  const v1::Model model = Create("examples/mnist_mlp_100.textproto");
  std::set<std::string> param_layers;
  for (const v1::LayerInfo& l : model.layers()) {
    if (l.params_size() > 0) param_layers.insert(l.name());
  }
  ASSERT_EQ(param_layers, (std::set<std::string>{"dense0", "dense2"}));

  RunResult r = Nnlab({"--json", "train", "--model", model.model_id(),
                       "--dataset", "mnist", "--optimizer", "sgd", "--lr",
                       "0.1", "--epochs", "1", "--batch", "32", "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 3u);

  // First line: the job as started; last line: the job as it ended.
  v1::Job started, ended;
  ASSERT_TRUE(testing::FromJson(lines.front(), &started)) << lines.front();
  ASSERT_TRUE(testing::FromJson(lines.back(), &ended)) << lines.back();
  EXPECT_EQ(started.job_id(), ended.job_id());
  EXPECT_EQ(ended.state(), v1::JOB_STATE_COMPLETED);
  EXPECT_EQ(ended.step(), 250);  // 8,000 samples / 32
  ASSERT_TRUE(ended.has_last_eval());
  EXPECT_GT(ended.last_eval().accuracy(), 0.85);

  // In between: every event, in order.
  int64_t last_step = 0, last_sequence = -1, train_events = 0;
  bool completed = false, evaluated = false;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    v1::MetricEvent e;
    ASSERT_TRUE(testing::FromJson(lines[i], &e)) << lines[i];
    EXPECT_GT(e.sequence(), last_sequence);
    last_sequence = e.sequence();
    if (e.phase() == v1::PHASE_TRAIN) {
      ++train_events;
      EXPECT_EQ(e.step(), last_step + 1);  // steps increase one by one
      last_step = e.step();
      EXPECT_TRUE(std::isfinite(e.loss()));
      std::set<std::string> seen;
      for (const v1::LayerStats& l : e.layers()) {
        seen.insert(l.name());
        EXPECT_GT(l.grad_bias_norm(), 0) << l.name() << " at step " << e.step();
        EXPECT_GT(l.weight_norm(), 0);
      }
      EXPECT_EQ(seen, param_layers) << "step " << e.step();
    } else if (e.phase() == v1::PHASE_EVAL) {
      evaluated = true;
      EXPECT_NEAR(e.accuracy(), ended.last_eval().accuracy(), 1e-9);
    } else if (e.phase() == v1::PHASE_STATE &&
               e.job_state() == v1::JOB_STATE_COMPLETED) {
      completed = true;
    }
  }
  EXPECT_EQ(train_events, 250);
  EXPECT_TRUE(evaluated);
  EXPECT_TRUE(completed);

  // The server evaluates the model on 100 test digits: one line with the
  // accuracy, the loss and the step of the weights.
  r = Nnlab({"infer", "--model", model.model_id(), "--dataset", "mnist:test",
             "--limit", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  ASSERT_THAT(lines.back(), StartsWith("accuracy "));
  EXPECT_THAT(lines.back(), HasSubstr("weights at step 250"));
  double acc = 0;
  ASSERT_TRUE(absl::SimpleAtod(std::string(lines.back()).substr(9, 6), &acc));
  EXPECT_GT(acc, 0.8);
  EXPECT_THAT(lines.back(), HasSubstr("/100)"));
  // The same in JSON ends with an EvalResult.
  r = Nnlab({"--json", "infer", "--model", model.model_id(), "--dataset",
             "mnist:test", "--limit", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::EvalResult eval;
  ASSERT_TRUE(testing::FromJson(Lines(r.out).back(), &eval));
  EXPECT_NEAR(eval.accuracy(), acc, 1e-4);
  EXPECT_EQ(eval.step(), 250);

  // Plots from the job's history.
  const std::string svg = ::testing::TempDir() + "/e2e_plot.svg";
  const std::string png = ::testing::TempDir() + "/e2e_plot.png";
  r = Nnlab({"plot", ended.job_id(), "--out", svg});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string text = testing::ReadAll(svg);
  EXPECT_THAT(text, StartsWith("<?xml"));
  EXPECT_THAT(text, HasSubstr(">dense0</text>"));
  EXPECT_THAT(text, HasSubstr(">dense2</text>"));
  EXPECT_THAT(text, HasSubstr("</svg>"));
  r = Nnlab({"plot", ended.job_id(), "--out", png});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string bytes = testing::ReadAll(png);
  ASSERT_GT(bytes.size(), 24u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(bytes.substr(12, 4), "IHDR");
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&image, png.c_str()));
  EXPECT_EQ(image.width, 1200u);
  EXPECT_GT(image.height, 900u);
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(image));
  ASSERT_TRUE(png_image_finish_read(&image, nullptr, px.data(), 0, nullptr));
  std::remove(svg.c_str());
  std::remove(png.c_str());
}

TEST_F(TrainingE2ETest, PlainOutputWhenNotATerminal) {
  const v1::Model model = Create("examples/lecture_deep_sigmoid.textproto");
  RunResult r =
      Nnlab({"train", "--model", model.model_id(), "--dataset", "mnist",
             "--optimizer", "sgd", "--lr", "0.1", "--batch", "10",
             "--max_steps", "60", "--eval_every", "30", "--watch",
             // Every step: plain output is otherwise about a line a second.
             "--every", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(absl::StrContains(r.out, "\x1b"));
  std::vector<std::string> lines = Lines(r.out);
  int steps = 0;
  for (const std::string& l : lines) {
    if (absl::StartsWith(l, "step ")) {
      ++steps;
      // Per-layer learning speeds of all five dense layers.
      for (const char* layer :
           {"dense0=", "dense2=", "dense4=", "dense6=", "dense8="}) {
        EXPECT_THAT(l, HasSubstr(layer));
      }
    }
  }
  EXPECT_EQ(steps, 60);
  EXPECT_THAT(r.out, HasSubstr("eval step 30"));
  EXPECT_THAT(lines.back(), HasSubstr("COMPLETED at step 60: test loss"));
}

// Runs nnlab on a pseudo-terminal of `cols` columns; returns everything it
// wrote and its exit code.
RunResult RunOnPty(const std::vector<std::string>& argv, int cols) {
  winsize ws{};
  ws.ws_row = 40;
  ws.ws_col = static_cast<unsigned short>(cols);
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  if (pid == 0) {
    setenv("TERM", "xterm-256color", 1);
    setenv("LANG", "C.UTF-8", 1);
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  RunResult r;
  char buf[4096];
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 120000) <= 0) break;  // 2 minutes without output: give up
    ssize_t n = read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO once the child has exited and closed the pty
    r.out.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  r.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

TEST_F(TrainingE2ETest, LiveViewOnATerminal) {
  const v1::Model model = Create("examples/lecture_deep_sigmoid.textproto");
  RunResult r =
      RunOnPty({NNLAB_CLI_PATH, "--server", server_.address(), "train",
                "--model", model.model_id(), "--dataset", "mnist",
                "--optimizer", "sgd", "--lr", "0.1", "--batch", "10",
                "--max_steps", "300", "--eval_every", "100", "--watch"},
               100);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const std::string& out = r.out;
  // The cursor is hidden while drawing and shown again at the end.
  EXPECT_TRUE(absl::StartsWith(out, "\x1b[?25l")) << out.substr(0, 40);
  EXPECT_TRUE(absl::EndsWith(out, "\x1b[?25h")) << out.substr(out.size() - 40);
  // Frames are redrawn in place: cursor-up escapes and line clears.
  EXPECT_THAT(out, HasSubstr("\x1b[K"));
  EXPECT_THAT(out, HasSubstr("A\r"));
  // The last frame: finished progress bar, metrics and the bar chart.
  const size_t last = out.rfind("job ");
  ASSERT_NE(last, std::string::npos);
  const std::string frame = out.substr(last);
  EXPECT_THAT(frame, HasSubstr("COMPLETED"));
  EXPECT_THAT(frame, HasSubstr("100%  step 300/"));
  EXPECT_THAT(frame, HasSubstr("train  loss "));
  EXPECT_THAT(frame, HasSubstr("test   loss "));
  EXPECT_THAT(frame, HasSubstr("learning speed ‖δˡ‖ per layer, log scale"));
  for (const char* layer :
       {"dense0 ", "dense2 ", "dense4 ", "dense6 ", "dense8 "}) {
    EXPECT_THAT(frame, HasSubstr(std::string("  ") + layer));
  }
  EXPECT_THAT(frame, HasSubstr("█"));
  // No line of a frame is wider than the terminal (so none wraps and the
  // in-place redraw stays aligned).
  for (absl::string_view line : absl::StrSplit(frame, '\n')) {
    std::string plain;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\x1b') {
        while (i < line.size() &&
               !std::isalpha(static_cast<unsigned char>(line[i])))
          ++i;
        continue;
      }
      plain += line[i];
    }
    int columns = 0;
    for (unsigned char c : plain) columns += (c & 0xc0) != 0x80 && c != '\r';
    EXPECT_LT(columns, 100) << plain;
  }
}

}  // namespace
}  // namespace nnlab

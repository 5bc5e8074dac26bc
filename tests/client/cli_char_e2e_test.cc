// A character model from the command line, end to end (real nnlabd on
// loopback, the real nnlab binary): the shipped example builds, a small
// char LSTM trains on chars:devil through StartJob until its training loss
// is clearly below the corpus's unigram entropy, and `nnlab sample` prints
// exactly the requested characters, all from the vocabulary, the same for
// the same seed; bad input fails with one-line errors and exit codes.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nnlab/v1/dataset.pb.h"
#include "nnlab/v1/model.pb.h"
#include "nnlab/v1/training.pb.h"
#include "tests/client/cli_test_util.h"

namespace nnlab {
namespace {

using testing::Lines;
using testing::RunProcess;
using testing::RunResult;
using testing::ServerProcess;
using testing::SourcePath;

// The corpus as the server reads it, decompressed here on its own.
std::string DevilText() {
  gzFile f = gzopen("/usr/share/dictd/devil.dict.dz", "rb");
  if (f == nullptr) return "";
  std::string text;
  char buf[1 << 16];
  int got = 0;
  while ((got = gzread(f, buf, sizeof(buf))) > 0) text.append(buf, got);
  gzclose(f);
  return text;
}

// Entropy in nats of the character distribution of `text`.
double UnigramEntropy(const std::string& text) {
  std::map<char, double> counts;
  for (char c : text) counts[c] += 1;
  double h = 0;
  for (const auto& [c, n] : counts) {
    const double p = n / static_cast<double>(text.size());
    h -= p * std::log(p);
  }
  return h;
}

class CharE2ETest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()) << server_.log(); }
  RunResult Nnlab(std::vector<std::string> args) {
    args.insert(args.begin(), {NNLAB_CLI_PATH, "--server", server_.address()});
    return RunProcess(args);
  }
  ServerProcess server_;
};

TEST_F(CharE2ETest, TrainsBelowUnigramEntropyAndSamples) {
  const std::string text = DevilText();
  ASSERT_EQ(text.size(), 383656u) << "dict-devil is not installed";
  const double entropy = UnigramEntropy(text.substr(0, text.size() * 9 / 10));
  EXPECT_NEAR(entropy, 3.094, 0.001);

  // The vocabulary on the wire.
  RunResult r = Nnlab({"--json", "datasets", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string vocabulary;
  for (const std::string& line : Lines(r.out)) {
    v1::DatasetInfo d;
    ASSERT_TRUE(testing::FromJson(line, &d)) << line;
    if (d.dataset_id() == "chars:devil:T=64") vocabulary = d.vocabulary();
  }
  ASSERT_EQ(vocabulary.size(), 85u) << r.out;

  // The shipped example builds as shown in its header.
  r = Nnlab({"models", "create", "--spec",
             SourcePath("examples/char_devil.textproto"), "--id", "devil"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // A smaller model of the same shape trains in seconds.
  const std::string spec_path =
      absl::StrCat(::testing::TempDir(), "/char-small-", getpid(), ".txtpb");
  {
    std::ofstream out(spec_path);
    out << "name: \"char-small\"\n"
           "input_shape: [32, 85]\n"
           "layers { lstm { units: 64 return_sequences: true } }\n"
           "layers { time_dense { units: 85 } }\n"
           "loss: LOSS_SEQUENCE_SOFTMAX_CROSS_ENTROPY\n"
           "init: INIT_GLOROT\n"
           "seed: 1\n";
  }
  r = Nnlab({"models", "create", "--spec", spec_path, "--id", "small"});
  unlink(spec_path.c_str());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nnlab({"--json", "train", "--model", "small", "--dataset",
             "chars:devil:T=32", "--optimizer", "adam", "--lr", "0.01",
             "--batch", "32", "--clip_norm", "1", "--max_steps", "300",
             "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_GE(lines.size(), 3u);
  v1::Job ended;
  ASSERT_TRUE(testing::FromJson(lines.back(), &ended)) << lines.back();
  ASSERT_EQ(ended.state(), v1::JOB_STATE_COMPLETED) << ended.failure_reason();
  std::vector<double> losses;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    v1::MetricEvent e;
    ASSERT_TRUE(testing::FromJson(lines[i], &e)) << lines[i];
    if (e.phase() != v1::PHASE_TRAIN) continue;
    losses.push_back(e.loss());
    // Per character: a fraction of the batch's 32 x 32 steps.
    EXPECT_GE(e.accuracy(), 0);
    EXPECT_LE(e.accuracy(), 1);
  }
  ASSERT_EQ(losses.size(), 300u);
  double first = 0, last = 0;
  for (int i = 0; i < 20; ++i) {
    first += losses[i] / 20;
    last += losses[losses.size() - 1 - i] / 20;
  }
  // Starts near ln 85 = 4.44, ends well below the unigram entropy: the
  // model uses the preceding characters.
  EXPECT_GT(first, entropy);
  EXPECT_LT(last, entropy - 0.4) << "first " << first;
  ASSERT_TRUE(ended.has_last_eval());
  std::printf(
      "unigram entropy %.3f; training loss %.3f -> %.3f; test loss "
      "%.3f, accuracy %.3f\n",
      entropy, first, last, ended.last_eval().loss(),
      ended.last_eval().accuracy());
  EXPECT_LT(ended.last_eval().loss(), entropy - 0.3);
  EXPECT_GT(ended.last_eval().accuracy(), 0.25);  // Per character.
  EXPECT_LT(ended.last_eval().accuracy(), 1);

  // Text: exactly --length characters (then a newline), all from the
  // vocabulary, the same for the same seed.
  const std::vector<std::string> sample = {
      "sample",   "--model", "small",         "--prime", "CYNIC, n. A",
      "--length", "300",     "--temperature", "0.8",     "--seed"};
  auto with_seed = [&](const std::string& seed) {
    std::vector<std::string> args = sample;
    args.push_back(seed);
    return Nnlab(args);
  };
  RunResult a = with_seed("7"), b = with_seed("7"), c = with_seed("8");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(a.out.size(), 301u);
  EXPECT_EQ(a.out.back(), '\n');
  for (char ch : a.out.substr(0, 300)) {
    EXPECT_NE(vocabulary.find(ch), std::string::npos) << int(ch);
  }
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  std::printf("sampled: %s", a.out.c_str());

  // Bad input: one line on stderr, meaningful exit codes.
  auto one_line_error = [](const RunResult& res, const std::string& code) {
    EXPECT_EQ(res.out, "");
    EXPECT_TRUE(absl::StartsWith(res.err, "nnlab: " + code)) << res.err;
    EXPECT_EQ(std::count(res.err.begin(), res.err.end(), '\n'), 1) << res.err;
  };
  r = Nnlab(
      {"sample", "--model", "small", "--prime", "50% off~", "--length", "10"});
  EXPECT_EQ(r.exit_code, 2);
  one_line_error(r, "INVALID_ARGUMENT");
  r = Nnlab(
      {"sample", "--model", "small", "--prime", "A", "--length", "100000"});
  EXPECT_EQ(r.exit_code, 2);
  one_line_error(r, "INVALID_ARGUMENT");
  r = Nnlab({"models", "create", "--spec",
             SourcePath("examples/mnist_mlp_100.textproto"), "--id", "mlp"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nnlab(
      {"sample", "--model", "mlp", "--prime", "A", "--dataset", "chars:devil"});
  EXPECT_EQ(r.exit_code, 1);
  one_line_error(r, "FAILED_PRECONDITION");
  // "devil" never trained: the vocabulary must be named.
  r = Nnlab({"sample", "--model", "devil", "--prime", "A"});
  EXPECT_EQ(r.exit_code, 1);
  one_line_error(r, "FAILED_PRECONDITION");
}

}  // namespace
}  // namespace nnlab

// Sequence models and GANs learning real tasks: the adding problem (LSTM
// against a vanilla RNN, with the per-timestep gradient norms that explain
// the difference), MNIST row by row, a GAN on a 1-D Gaussian, and a
// character model on a text file. The full-budget runs are the example
// programs adding_problem and mnist_rows; the bars here are stated with
// each test.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/data/sequence_data.h"
#include "core/layers/recurrent.h"
#include "core/model/model.h"
#include "core/model/sequence_model.h"
#include "core/model/zoo.h"
#include "core/optim/optimizer.h"
#include "core/train/gan_trainer.h"
#include "core/train/trainer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

// ----- Adding problem
// ---------------------------------------------------------

struct AddingRun {
  std::vector<std::pair<int64_t, double>> curve;  // (step, test MSE).
  std::vector<double> grad_norms;                 // ||dE/dh_t||, last step.
  // ||dE/dh_0|| / ||dE/dh_T-1|| of the step before each evaluation.
  std::vector<double> first_to_last;
};

// T = 100, 64 units, Adam 1e-3, batch 64, clipping at global norm 1, a fresh
// batch per step; test MSE on 1,000 held-out sequences every 250 steps.
// Stops early once the test MSE is below `stop_below`.
AddingRun TrainAdding(const std::string& kind, int64_t steps,
                      double stop_below) {
  auto model = std::move(Model::Build(AddingProblemModel(kind, 100))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kAdam;
  options.optimizer.lr = 1e-3f;
  options.optimizer.clip_norm = 1.0f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  auto task = std::move(AddingProblem::Create(100)).value();
  Rng data_rng(101), test_rng(12345);
  Tensor test_x, test_y, x, y;
  task->Sample(1000, &test_rng, &test_x, &test_y);
  AddingRun run;
  StepStats stats;
  for (int64_t step = 1; step <= steps; ++step) {
    task->Sample(64, &data_rng, &x, &y);
    const absl::Status s = trainer->TrainStep(x, y, false, &stats);
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) break;
    if (step % 250 == 0) {
      const std::vector<double>& g =
          RecurrentLayers(&model->layers())[0]->timestep_grad_norms();
      run.first_to_last.push_back(g.front() / g.back());
      const double mse = MeanSquaredError(model.get(), test_x, test_y);
      run.curve.push_back({step, mse});
      std::printf("%s step %lld: test MSE %.4f\n", kind.c_str(),
                  static_cast<long long>(step), mse);
      std::fflush(stdout);
      if (mse < stop_below) break;
    }
  }
  run.grad_norms = RecurrentLayers(&model->layers())[0]->timestep_grad_norms();
  return run;
}

TEST(AddingProblemTest, LstmLearnsLongLagsWhileVanillaRnnIsStuck) {
  // LSTM: test MSE < 0.05 within 4,000 steps (predicting the mean: 1/6).
  const AddingRun lstm = TrainAdding("lstm", 4000, 0.05);
  ASSERT_FALSE(lstm.curve.empty());
  EXPECT_LT(lstm.curve.back().second, 0.05);
  const int64_t budget = lstm.curve.back().first;

  // A vanilla RNN with the same budget, data, initialisation and optimizer
  // is still at the mean predictor. (Given longer, it can find the marks
  // too: examples/adding_problem prints both curves to 8,000 steps.)
  const AddingRun rnn = TrainAdding("rnn", budget, 0.0);
  ASSERT_EQ(rnn.curve.size(), lstm.curve.size());
  for (const auto& [step, mse] : rnn.curve) EXPECT_GT(mse, 0.12) << step;

  // Why: the gradient reaching the first steps, where a marked value can
  // sit, has vanished in the RNN; the LSTM's cell carries it.
  ASSERT_EQ(rnn.grad_norms.size(), 100u);
  ASSERT_EQ(lstm.grad_norms.size(), 100u);
  // The RNN's ratio is taken as the median over the run: near the end of
  // the budget it may begin to find the marks, and one step's ratio then
  // says little (6e-2 at step 2,000 in one run, after 1e-5..1e-4 before).
  std::vector<double> rnn_ratios = rnn.first_to_last;
  std::sort(rnn_ratios.begin(), rnn_ratios.end());
  const double rnn_ratio = rnn_ratios[rnn_ratios.size() / 2];
  const double lstm_ratio = lstm.grad_norms[0] / lstm.grad_norms[99];
  std::printf(
      "||dE/dh_0|| / ||dE/dh_99||: rnn median over %lld steps %.2e (last "
      "%.2e), lstm after them %.2e\n",
      static_cast<long long>(budget), rnn_ratio, rnn.first_to_last.back(),
      lstm_ratio);
  EXPECT_LT(rnn_ratio, 1e-3);
  EXPECT_GT(lstm_ratio, 1e-2);
}

// ----- MNIST rows -----------------------------------------------------------

// The bar: >= 94% on the 2,000 held-out digits within 12 epochs.
// The run stops at the first epoch that reaches it (epoch 8 here, ~1 min of
// one core); examples/mnist_rows prints all 12.
constexpr int kMnistEpochs = 12;
constexpr double kMnistBar = 0.94;

TEST(MnistRowsTest, LstmReadsDigitsRowByRow) {
  auto data = LoadMnistRows(DefaultDatasetsDir());
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->train->sample_shape(), (Shape{28, 28}));
  ModelSpec spec;
  spec.input_shape = {28, 28};
  spec.init = InitKind::kGlorot;
  spec.layers.resize(2);
  spec.layers[0].kind = "lstm";
  spec.layers[0].units = 128;
  spec.layers[1].kind = "dense";
  spec.layers[1].units = 10;
  auto model = std::move(Model::Build(spec)).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kAdam;
  options.optimizer.lr = 1e-3f;
  options.optimizer.clip_norm = 1.0f;
  options.epochs = kMnistEpochs;
  options.batch_size = 64;
  options.stats_every = 0;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  double accuracy = 0;
  Trainer::Callbacks callbacks;
  callbacks.on_eval = [&](const StepStats& at, const EvalResult& r) {
    accuracy = r.accuracy;
    std::printf("MNIST rows epoch %d: test accuracy %.4f, loss %.4f\n",
                at.epoch + 1, r.accuracy, r.loss);
    std::fflush(stdout);
  };
  callbacks.should_stop = [&] { return accuracy >= kMnistBar; };
  const absl::Status s =
      trainer->Run(*data->train, data->test.get(), callbacks);
  // Cancelled: stopped early, having reached the bar.
  EXPECT_TRUE(s.ok() || absl::IsCancelled(s)) << s;
  EXPECT_GE(accuracy, kMnistBar);
}

// ----- GAN on N(4, 1.25) ----------------------------------------------------

TEST(GanGaussianTest, GeneratorMatchesTheTargetAndDTendsToOneHalf) {
  GanOptions o;
  o.generator.input_shape = {8};
  o.generator.init = InitKind::kHe;
  o.generator.seed = 1;
  o.discriminator.input_shape = {1};
  o.discriminator.init = InitKind::kHe;
  o.discriminator.loss = LossKind::kSigmoidCrossEntropy;
  o.discriminator.seed = 2;
  // G: 8 -> 32 -> 32 -> 1, D: 1 -> 32 -> 32 -> 1 -> sigmoid, ReLU.
  for (ModelSpec* m : {&o.generator, &o.discriminator}) {
    for (const char* kind : {"dense", "relu", "dense", "relu", "dense"}) {
      LayerSpec layer;
      layer.kind = kind;
      layer.units = layer.kind == "dense" ? 32 : 0;
      m->layers.push_back(layer);
    }
    m->layers.back().units = 1;
  }
  o.discriminator.layers.push_back(LayerSpec{});
  o.discriminator.layers.back().kind = "sigmoid";
  for (OptimizerConfig* c : {&o.g_optimizer, &o.d_optimizer}) {
    c->kind = OptimizerKind::kAdam;
    c->lr = 1e-3f;
    c->beta1 = 0.5f;
  }
  o.batch_size = 64;
  auto gan = std::move(GanTrainer::Create(o)).value();
  auto target = std::move(Gaussian1D::Create(4.0f, 1.25f)).value();
  GanStepStats s;
  for (int step = 1; step <= 5000; ++step) {
    ASSERT_TRUE(gan->Step(*target, &s).ok());
    if (step % 500 == 0) {
      std::printf(
          "GAN step %d: D loss %.3f, G loss %.3f, D(x) %.3f, D(G(z)) %.3f, "
          "|grad D| %.3f, |grad G| %.3f\n",
          step, s.d_loss, s.g_loss, s.d_real, s.d_fake, s.d_grad_norm,
          s.g_grad_norm);
    }
  }
  Tensor samples, real, probs;
  gan->Generate(10000, &samples);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < samples.size(); ++i) mean += samples[i];
  mean /= samples.size();
  for (int64_t i = 0; i < samples.size(); ++i) {
    var += (samples[i] - mean) * (samples[i] - mean);
  }
  const double sd = std::sqrt(var / samples.size());
  Rng rng(99);
  target->Sample(10000, &rng, &real, nullptr);
  gan->Discriminate(real, &probs);
  double d_real = 0;
  for (int64_t i = 0; i < probs.size(); ++i) d_real += probs[i];
  d_real /= probs.size();
  std::printf(
      "GAN after 5000 steps: samples mean %.3f sd %.3f (target 4, "
      "1.25); mean D(x) on 10,000 real samples %.3f\n",
      mean, sd, d_real);
  EXPECT_NEAR(mean, 4.0, 0.2);
  EXPECT_NEAR(sd, 1.25, 0.25);
  EXPECT_NEAR(d_real, 0.5, 0.1);
}

// ----- Character model
// --------------------------------------------------------

// Steps on random windows of 64 characters (batch 32, Adam 3e-3), and the
// bar on validation loss as a fraction of the unigram baseline.
constexpr int64_t kCharSteps = 600;
constexpr double kCharBar = 0.7;

// Maximal runs of >= 2 letters.
std::vector<std::string> WordList(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      cur.push_back(c);
    } else {
      if (cur.size() >= 2) out.push_back(cur);
      cur.clear();
    }
  }
  return out;
}

std::set<std::string> Words(const std::string& text) {
  const std::vector<std::string> list = WordList(text);
  return std::set<std::string>(list.begin(), list.end());
}

TEST(CharModelTest, BeatsUnigramBaselineAndGeneratesText) {
  // Any text file works; the GPL-3 text ships with every Debian system
  // (package base-files).
  auto corpus = CharCorpus::FromFile("/usr/share/common-licenses/GPL-3");
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  const int64_t split = corpus->size() * 9 / 10, len = 64;
  auto train = std::move(corpus->WindowSampler(0, split, len)).value();
  auto valid =
      std::move(corpus->Windows(split, corpus->size(), len, len)).value();
  const double unigram =
      corpus->UnigramCrossEntropy(0, split, split, corpus->size());
  const int64_t v = corpus->vocab_size();

  ModelSpec spec;
  spec.input_shape = {len, v};
  spec.init = InitKind::kGlorot;
  spec.loss = LossKind::kMse;  // Unused: the per-step loss is below.
  spec.layers.resize(2);
  spec.layers[0].kind = "lstm";
  spec.layers[0].units = 128;
  spec.layers[0].return_sequences = true;
  spec.layers[1].kind = "time_dense";
  spec.layers[1].units = v;
  auto model = std::move(Model::Build(spec)).value();
  OptimizerConfig config;
  config.kind = OptimizerKind::kAdam;
  config.lr = 3e-3f;
  std::vector<Param> params = model->Params();
  auto opt = MakeOptimizer(config, params);
  SequenceSoftmaxCrossEntropy loss;
  Rng rng(1);
  Tensor x, y, grad;
  auto validation_loss = [&]() {
    BatchIterator it(valid.get(), 64, false, &rng);
    it.StartEpoch();
    double sum = 0;
    int64_t count = 0;
    while (it.Next(&x, &y)) {
      sum += loss.Compute(model->Forward(x, Mode::kEval), y, &grad) *
             double(x.dim(0));
      count += x.dim(0);
    }
    return sum / count;
  };
  for (int64_t step = 1; step <= kCharSteps; ++step) {
    train->Sample(32, &rng, &x, &y);
    model->ZeroGrad();
    const Tensor& out = model->Forward(x, Mode::kTrain);
    ASSERT_TRUE(loss.ValidateTarget(out.shape(), y).ok());
    loss.Compute(out, y, &grad);
    model->Backward(grad);
    ClipGradNorm(params, 1.0f);
    opt->Step(config.lr);
    if (step % 200 == 0) {
      std::printf(
          "char model step %lld: validation %.3f nats/char (unigram "
          "%.3f)\n",
          static_cast<long long>(step), validation_loss(), unigram);
      std::fflush(stdout);
    }
  }
  const double val = validation_loss();
  EXPECT_LT(val, kCharBar * unigram);

  // Generation continues with the training RNG.
  auto text =
      GenerateText(*corpus, model.get(), "This License", 300, 0.8f, &rng);
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_EQ(text->size(), 300u);
  std::printf("generated: This License%s\n", text->c_str());
  // Real structure: the model writes words of the corpus; characters drawn
  // from the unigram distribution almost never do.
  const std::set<std::string> words = Words(corpus->text());
  auto word_rate = [&](const std::string& s) {
    int64_t hits = 0, total = 0;
    for (const std::string& word : WordList(s)) {
      hits += words.count(word);
      ++total;
    }
    return total == 0 ? 0.0 : double(hits) / total;
  };
  std::string unigram_text;
  for (int i = 0; i < 300; ++i) {
    unigram_text.push_back(corpus->text()[rng.UniformInt(split)]);
  }
  const double model_rate = word_rate(*text);
  const double unigram_rate = word_rate(unigram_text);
  std::printf(
      "words of the corpus among generated words: model %.2f, "
      "unigram sampler %.2f\n",
      model_rate, unigram_rate);
  EXPECT_GT(model_rate, 0.4);
  EXPECT_GT(model_rate, unigram_rate + 0.3);
}

}  // namespace
}  // namespace nnlab

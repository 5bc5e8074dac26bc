// Model building and validation, the estimate of a spec's cost, the layer
// registry, training steps, statistics, and the non-finite guard.
#include "core/model/model.h"

#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/kernels/onednn_conv.h"
#include "core/layers/registry.h"
#include "core/model/loss.h"
#include "core/model/zoo.h"
#include "core/train/trainer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;

LayerSpec L(const char* kind, int64_t units = 0) {
  LayerSpec s;
  s.kind = kind;
  s.units = units;
  return s;
}

ModelSpec Mlp(std::vector<int64_t> sizes, const char* act,
              InitKind init = InitKind::kScaledNormal) {
  ModelSpec spec;
  spec.input_shape = {sizes[0]};
  for (size_t i = 1; i < sizes.size(); ++i) {
    spec.layers.push_back(L("dense", sizes[i]));
    if (i + 1 < sizes.size()) spec.layers.push_back(L(act));
  }
  spec.init = init;
  spec.seed = 42;
  return spec;
}

TEST(ModelTest, BuildsAndCountsParameters) {
  auto model = Model::Build(Mlp({784, 30, 10}, "sigmoid"));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->ParameterCount(), 784 * 30 + 30 + 30 * 10 + 10);
  EXPECT_EQ((*model)->output_shape(), Shape({10}));
  // The shape-only pass agrees with the build, and errs as it does.
  const ModelSpec spec = Mlp({784, 30, 10}, "sigmoid");
  EXPECT_EQ(*LayerStack::OutputShape(spec.layers, spec.input_shape, ""),
            Shape({10}));
  absl::StatusOr<Shape> bad =
      LayerStack::OutputShape(spec.layers, Shape({28, 28}), "");
  EXPECT_EQ(bad.status(), Model::Build([&] {
                            ModelSpec s = spec;
                            s.input_shape = {28, 28};
                            return s;
                          }())
                              .status());
  EXPECT_NE(bad.status().message().find("dense0"), std::string::npos)
      << bad.status();
}

TEST(ModelTest, RejectsBadSpecsNamingTheLayer) {
  ModelSpec zero = Mlp({784, 30, 10}, "relu");
  zero.layers[2].units = 0;
  auto s = Model::Build(zero).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("dense2"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("units"));

  ModelSpec unknown = Mlp({4, 3}, "relu");
  unknown.layers.push_back(L("softsign"));
  s = Model::Build(unknown).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("softsign1"));

  ModelSpec image = Mlp({4, 3}, "relu");
  image.input_shape = {1, 28, 28};  // Dense needs rank-1 input.
  s = Model::Build(image).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("[1, 28, 28]"));

  ModelSpec empty_input = Mlp({4, 3}, "relu");
  empty_input.input_shape = {0};
  EXPECT_EQ(Model::Build(empty_input).status().code(),
            absl::StatusCode::kInvalidArgument);

  ModelSpec one_class = Mlp({4, 1}, "relu");  // Softmax over one output.
  EXPECT_EQ(Model::Build(one_class).status().code(),
            absl::StatusCode::kInvalidArgument);

  ModelSpec huge = Mlp({1 << 20, 1 << 20, 10}, "relu");
  EXPECT_EQ(Model::Build(huge).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ModelTest, CheckInputRejectsWrongShapesAndNaN) {
  auto model = std::move(Model::Build(Mlp({4, 3}, "relu"))).value();
  Tensor ok({2, 4});
  EXPECT_TRUE(model->CheckInput(ok).ok());
  Tensor wrong({2, 5});
  EXPECT_EQ(model->CheckInput(wrong).code(),
            absl::StatusCode::kInvalidArgument);
  ok[3] = std::nanf("");
  EXPECT_EQ(model->CheckInput(ok).code(), absl::StatusCode::kInvalidArgument);
}

// One layer of every kind at an input it accepts. Residual and recurrent
// kinds come in the variants whose arithmetic differs.
struct KindCase {
  LayerSpec spec;
  Shape in;
};

std::vector<KindCase> EveryKind() {
  auto with = [](const char* kind, auto set) {
    LayerSpec s = L(kind);
    set(&s);
    return s;
  };
  auto none = [](LayerSpec*) {};
  LayerSpec conv = with("conv2d", [](LayerSpec* s) {
    s->filters = 5;
    s->kernel = 3;
    s->stride = 2;
    s->padding = 1;
  });
  LayerSpec conv_same = with("conv2d", [](LayerSpec* s) {
    s->filters = 3;
    s->padding = 1;
  });
  return {
      {L("dense", 7), {5}},
      {L("sigmoid"), {2, 3}},
      {L("tanh"), {4}},
      {L("relu"), {3, 4, 4}},
      {L("leaky_relu"), {6}},
      {L("dropout"), {2, 5}},
      {L("batch_norm"), {6}},
      {L("batch_norm"), {3, 4, 4}},
      {conv, {3, 9, 9}},
      {with("max_pool2d", [](LayerSpec* s) { s->kernel = s->stride = 2; }),
       {3, 8, 8}},
      {with("avg_pool2d", [](LayerSpec* s) { s->kernel = s->stride = 2; }),
       {3, 8, 8}},
      {with("global_avg_pool", none), {4, 3, 3}},
      {with("flatten", none), {2, 3, 4}},
      // Identity shortcut; dense projection; strided 1x1 conv projection.
      {with("residual", [](LayerSpec* s) { s->body = {L("dense", 6)}; }), {6}},
      {with("residual",
            [](LayerSpec* s) {
              s->body = {L("dense", 4), L("relu"), L("dense", 9)};
            }),
       {6}},
      {with("residual",
            [=](LayerSpec* s) {
              s->body = {conv, L("batch_norm"), conv_same};
            }),
       {2, 9, 9}},
      {L("rnn", 4), {5, 3}},
      {with("rnn",
            [](LayerSpec* s) {
              s->units = 6;
              s->return_sequences = true;
            }),
       {7, 2}},
      {L("lstm", 4), {5, 3}},
      {with("lstm",
            [](LayerSpec* s) {
              s->units = 3;
              s->return_sequences = true;
              s->bptt_window = 2;
            }),
       {6, 5}},
      {L("time_dense", 3), {6, 5}},
  };
}

// The layer's estimate is what the built layer holds: its output shape and
// the sum of its Params() sizes, for every registered kind.
TEST(EstimateTest, EveryLayerKindCountsWhatItBuilds) {
  std::set<std::string> seen;
  for (const KindCase& c : EveryKind()) {
    SCOPED_TRACE(c.spec.kind + " on " + ShapeToString(c.in));
    seen.insert(c.spec.kind);
    LayerCost cost;
    absl::StatusOr<Shape> estimated = EstimateLayer(c.spec, "x", c.in, &cost);
    ASSERT_TRUE(estimated.ok()) << estimated.status();
    Rng rng(3);
    Shape out;
    absl::StatusOr<std::unique_ptr<Layer>> layer =
        MakeLayer(c.spec, "x", c.in, InitKind::kGlorot, &rng, &out);
    ASSERT_TRUE(layer.ok()) << layer.status();
    EXPECT_EQ(*estimated, out);
    int64_t built = 0;
    for (const Param& p : (*layer)->Params()) built += p.value->size();
    EXPECT_EQ(cost.params, built);
    EXPECT_GE(cost.buffer_floats, NumElements(out));
    const bool has_params = LayerTraitsOf(c.spec.kind).has_params;
    if (has_params) {
      EXPECT_GT(built, 0);
    }
    if (!has_params && !LayerTraitsOf(c.spec.kind).composite) {
      EXPECT_EQ(built, 0);
    }
  }
  for (const RegisteredLayer& r : RegisteredLayers()) {
    EXPECT_EQ(seen.count(std::string(r.kind)), 1u)
        << r.kind << " has no case here";
  }
}

TEST(EstimateTest, BuffersAreTheLargestPerSampleTensor) {
  LayerCost cost;
  // Dense 10 -> 100: the output.
  ASSERT_TRUE(EstimateLayer(L("dense", 100), "d", {10}, &cost).ok());
  EXPECT_EQ(cost.buffer_floats, 100);
  // Conv 3x3, 2 -> 4 channels, "same" on 8x8: im2col [2*9, 64] beats the
  // output [4, 8, 8].
  LayerSpec conv = L("conv2d");
  conv.filters = 4;
  conv.padding = 1;
  ASSERT_TRUE(EstimateLayer(conv, "c", {2, 8, 8}, &cost).ok());
  EXPECT_EQ(cost.params, 4 * 2 * 9 + 4);
  EXPECT_EQ(cost.buffer_floats, 2 * 9 * 64);
  // 1 -> 4 channels: on oneDNN its blocked copies (channels padded to 16)
  // outgrow im2col's [9, 64]; im2col alone needs only that.
  const ConvPath saved_path = SetConvPath(ConvPath::kOneDnn);
  ASSERT_TRUE(EstimateLayer(conv, "c", {1, 8, 8}, &cost).ok());
  EXPECT_EQ(cost.buffer_floats, 16 * 64);
  SetConvPath(ConvPath::kIm2col);
  ASSERT_TRUE(EstimateLayer(conv, "c", {1, 8, 8}, &cost).ok());
  EXPECT_EQ(cost.buffer_floats, 9 * 64);
  SetConvPath(saved_path);
  // LSTM of 4 units over [5, 3]: caches T (F + 6 H).
  ASSERT_TRUE(EstimateLayer(L("lstm", 4), "l", {5, 3}, &cost).ok());
  EXPECT_EQ(cost.params, 4 * 4 * (3 + 4 + 1));
  EXPECT_EQ(cost.buffer_floats, 5 * (3 + 6 * 4));
  // A model counts its input too.
  ModelSpec spec = Mlp({1000, 10}, "relu");
  EXPECT_EQ(EstimateModel(spec).buffer_floats, 1000);
}

TEST(EstimateTest, ModelEstimateIsTheBuiltCount) {
  ModelSpec seq;
  seq.input_shape = {12, 7};
  seq.layers = {L("lstm", 9), L("rnn", 5), L("time_dense", 7)};
  seq.layers[0].return_sequences = seq.layers[1].return_sequences = true;
  seq.loss = LossKind::kMse;
  for (const ModelSpec& spec :
       {FashionResidualCnn(), FashionResidualCnn(/*shortcuts=*/false),
        AddingProblemModel("rnn", 20), AddingProblemModel("lstm", 20), seq,
        Mlp({784, 30, 10}, "sigmoid")}) {
    SCOPED_TRACE(ShapeToString(spec.input_shape));
    const ModelCost cost = EstimateModel(spec);
    ASSERT_TRUE(cost.status.ok()) << cost.status;
    auto model = Model::Build(spec);
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(cost.params, (*model)->ParameterCount());
    EXPECT_EQ(cost.output_shape, (*model)->output_shape());
  }
}

// The estimate fails exactly when Build does, with Build's words, and
// still reports what the spec claims.
TEST(EstimateTest, ErrsAsBuildDoesAndKeepsTheClaim) {
  std::vector<ModelSpec> bad;
  bad.push_back(Mlp({784, 30, 10}, "relu"));
  bad.back().layers[2].units = 0;
  bad.push_back(Mlp({4, 3}, "relu"));
  bad.back().layers.push_back(L("softsign"));
  bad.push_back(Mlp({4, 3}, "relu"));
  bad.back().input_shape = {1, 28, 28};
  bad.push_back(Mlp({4, 3}, "relu"));
  bad.back().input_shape = {};
  bad.push_back(Mlp({4, 1}, "relu"));  // Softmax over one output.
  bad.push_back(Mlp({4, 3}, "relu"));
  bad.back().layers.clear();
  ModelSpec body = Mlp({6, 3}, "relu");  // A residual body that fails.
  LayerSpec block = L("residual");
  block.body = {L("dense", 4), L("conv2d")};
  body.layers.insert(body.layers.begin(), block);
  bad.push_back(body);
  for (const ModelSpec& spec : bad) {
    const absl::Status built = Model::Build(spec).status();
    ASSERT_FALSE(built.ok());
    EXPECT_EQ(EstimateModel(spec).status, built);
  }
  // Dense 2^20 x 2^20 is refused by the layer, yet claims its 2^40 weights.
  const ModelCost huge = EstimateModel(Mlp({1 << 20, 1 << 20, 10}, "relu"));
  EXPECT_EQ(huge.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(huge.params, (int64_t{1} << 40) + (1 << 20));
  // A 1024x1024 kernel padded by 1024 (padding must stay below the kernel)
  // still claims its im2col matrix [1024^2, 2049^2].
  ModelSpec padded;
  padded.input_shape = {1, 1024, 1024};
  padded.layers = {L("conv2d")};
  padded.layers[0].filters = 1;
  padded.layers[0].kernel = padded.layers[0].padding = 1024;
  const ModelCost wide = EstimateModel(padded);
  EXPECT_EQ(wide.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(wide.status.message()), HasSubstr("padding"));
  EXPECT_EQ(wide.params, 1024 * 1024 + 1);
  EXPECT_EQ(wide.buffer_floats, int64_t{1024 * 1024} * 2049 * 2049);
  // Counts beyond int64 saturate: flatten [2^24, 2^24] -> dense 2^40.
  ModelSpec overflow;
  overflow.input_shape = {1 << 24, 1 << 24};
  overflow.layers = {L("flatten"), L("dense", int64_t{1} << 40)};
  EXPECT_EQ(EstimateModel(overflow).params,
            std::numeric_limits<int64_t>::max());
}

TEST(RegistryTest, KindsAndTraits) {
  for (const RegisteredLayer& r : RegisteredLayers()) {
    EXPECT_EQ(FindLayerKind(r.kind), &r);
  }
  EXPECT_EQ(FindLayerKind("softsign"), nullptr);
  EXPECT_TRUE(LayerTraitsOf("dense").has_params);
  EXPECT_TRUE(LayerTraitsOf("relu").activation);
  EXPECT_TRUE(LayerTraitsOf("leaky_relu").activation);
  EXPECT_FALSE(LayerTraitsOf("dropout").activation);
  EXPECT_TRUE(LayerTraitsOf("dropout").stochastic);
  EXPECT_TRUE(LayerTraitsOf("lstm").recurrent);
  EXPECT_TRUE(LayerTraitsOf("rnn").has_params);
  EXPECT_FALSE(LayerTraitsOf("time_dense").recurrent);
  EXPECT_TRUE(LayerTraitsOf("residual").composite);
  EXPECT_FALSE(LayerTraitsOf("softsign").has_params);
  // Each registered name is the kind() of the layer its factory makes.
  for (const KindCase& c : EveryKind()) {
    const RegisteredLayer* r = FindLayerKind(c.spec.kind);
    ASSERT_NE(r, nullptr) << c.spec.kind;
    absl::StatusOr<std::unique_ptr<Layer>> layer = r->factory(c.spec);
    ASSERT_TRUE(layer.ok()) << layer.status();
    EXPECT_EQ((*layer)->kind(), r->kind);
    // Activations are the layers whose SaturatedFraction means something.
    Tensor out({2, 3});
    EXPECT_EQ((*layer)->SaturatedFraction(out) >= 0, r->traits.activation)
        << r->kind;
  }
}

// A small random regression batch for the 4-input models below.
void RandomBatch(Rng* rng, Tensor* x, Tensor* y, int classes) {
  *x = Tensor({8, 4});
  *y = Tensor({8});
  for (int64_t i = 0; i < x->size(); ++i) (*x)[i] = rng->Normal();
  for (int64_t i = 0; i < 8; ++i) (*y)[i] = float(rng->UniformInt(classes));
}

TEST(TrainerTest, SameSeedGivesBitIdenticalLosses) {
  std::vector<float> losses[2];
  for (int run = 0; run < 2; ++run) {
    auto model = std::move(Model::Build(Mlp({4, 16, 3}, "tanh"))).value();
    TrainOptions options;
    options.optimizer.kind = OptimizerKind::kAdam;
    auto trainer = std::move(Trainer::Create(model.get(), options)).value();
    Rng rng(5);
    Tensor x, y;
    StepStats stats;
    for (int step = 0; step < 20; ++step) {
      RandomBatch(&rng, &x, &y, 3);
      ASSERT_TRUE(trainer->TrainStep(x, y, true, &stats).ok());
      losses[run].push_back(stats.loss);
    }
  }
  EXPECT_EQ(losses[0], losses[1]);
}

TEST(TrainerTest, StepStatsDescribeEveryParameterisedLayer) {
  auto model = std::move(Model::Build(Mlp({4, 16, 8, 3}, "relu"))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  Rng rng(9);
  Tensor x, y;
  RandomBatch(&rng, &x, &y, 3);
  StepStats stats;
  ASSERT_TRUE(trainer->TrainStep(x, y, true, &stats).ok());
  EXPECT_EQ(stats.step, 1);
  ASSERT_EQ(stats.layers.size(), 3u);
  EXPECT_EQ(stats.layers[0].name, "dense0");
  EXPECT_EQ(stats.layers[2].name, "dense4");
  for (const LayerStats& l : stats.layers) {
    EXPECT_GT(l.grad_weight_norm, 0);
    EXPECT_GT(l.weight_norm, 0);
  }
  // Hidden layers are followed by ReLU: dead-unit fraction is reported;
  // the output layer has no activation.
  EXPECT_GE(stats.layers[0].saturated_fraction, 0);
  EXPECT_EQ(stats.layers[2].saturated_fraction, -1);
  // SGD moves W by lr * dE/dW, so the update ratio is exactly
  // lr * ||dE/dW|| / ||W_before|| (up to float rounding).
  const LayerStats& last = stats.layers[2];
  auto params = model->Params();
  EXPECT_NEAR(last.update_ratio * last.weight_norm, 0.1 * last.grad_weight_norm,
              1e-2 * 0.1 * last.grad_weight_norm);
  EXPECT_EQ(params[4].name, "dense4.weight");
}

// Widths that are no multiple of 8 reach the reductions' scalar tails.
TEST(TrainerTest, StepStatsEqualTheirDefinitionsSummedInDouble) {
  auto model = std::move(Model::Build(Mlp({37, 53, 3}, "tanh"))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.5f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  Rng rng(4);
  Tensor x({11, 37}), y({11});
  for (int64_t i = 0; i < x.size(); ++i) x[i] = rng.Normal();
  for (int64_t i = 0; i < y.size(); ++i) y[i] = float(rng.UniformInt(3));
  const Tensor& w = *model->Params()[0].value;
  ASSERT_EQ(model->Params()[0].name, "dense0.weight");
  const std::vector<float> before(w.data(), w.data() + w.size());
  StepStats stats;
  ASSERT_TRUE(trainer->TrainStep(x, y, true, &stats).ok());

  double w2 = 0, dw2 = 0, b2 = 0;
  for (int64_t i = 0; i < w.size(); ++i) {
    w2 += double(w[i]) * w[i];
    b2 += double(before[i]) * before[i];
    dw2 += (double(w[i]) - before[i]) * (double(w[i]) - before[i]);
  }
  // dense0's statistics describe the tanh after it (layer 1).
  const Tensor& act = model->layers().output(1);
  ASSERT_EQ(act.size(), x.dim(0) * 53);
  double sum = 0, sum2 = 0;
  for (int64_t i = 0; i < act.size(); ++i) {
    sum += act[i];
    sum2 += double(act[i]) * act[i];
  }
  const double mean = sum / act.size();
  const LayerStats& l = stats.layers[0];
  ASSERT_GT(dw2, 0);
  EXPECT_NEAR(l.weight_norm, std::sqrt(w2), 1e-12 * std::sqrt(w2));
  EXPECT_NEAR(l.update_ratio, std::sqrt(dw2 / b2), 1e-9 * l.update_ratio);
  EXPECT_NEAR(l.activation_mean, mean, 1e-12);
  EXPECT_NEAR(l.activation_std, std::sqrt(sum2 / act.size() - mean * mean),
              1e-9);
}

TEST(TrainerTest, NonFiniteGradientStopsWithTheLayerNamed) {
  auto model = std::move(Model::Build(Mlp({4, 8, 3}, "relu"))).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1f;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  // Weights so large the logits overflow to infinity.
  auto params = model->Params();
  params[0].value->Fill(1e38f);
  Tensor before = params[2].value->Clone();
  Rng rng(3);
  Tensor x, y;
  RandomBatch(&rng, &x, &y, 3);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = std::abs(x[i]) + 1;
  StepStats stats;
  absl::Status s = trainer->TrainStep(x, y, false, &stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(s.message()), HasSubstr("step 1"));
  // The parameters are left as they were.
  for (int64_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ((*params[2].value)[i], before[i]);
  }
}

TEST(TrainerTest, RejectsBadOptions) {
  auto model = std::move(Model::Build(Mlp({4, 3}, "relu"))).value();
  TrainOptions options;
  options.batch_size = 0;
  EXPECT_EQ(Trainer::Create(model.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.batch_size = 8;
  options.optimizer.lr = std::nanf("");
  EXPECT_EQ(Trainer::Create(model.get(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nnlab

namespace nnlab {
namespace {

// LossKind::kSequenceSoftmaxCrossEntropy: a model with [T, C] outputs builds
// with it, one with [C] does not; its gradient matches central differences;
// Evaluate's accuracy is per (sample, step) pair.
TEST(SequenceLossKindTest, BuildsGradientAndPerStepAccuracy) {
  ModelSpec spec;
  spec.input_shape = {3, 4};
  spec.layers = {L("lstm", 5), L("time_dense", 4)};
  spec.layers[0].return_sequences = true;
  spec.loss = LossKind::kSequenceSoftmaxCrossEntropy;
  spec.init = InitKind::kGlorot;
  spec.seed = 3;
  auto model = Model::Build(spec);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->output_shape(), (Shape{3, 4}));
  EXPECT_TRUE((*model)->loss()->per_step());
  EXPECT_TRUE((*model)->loss()->is_classifier());
  ModelSpec flat = spec;
  flat.layers = {L("lstm", 5), L("dense", 4)};
  EXPECT_THAT(Model::Build(flat).status().message(), HasSubstr("[T, classes]"));

  // dC/dz against central differences in double precision.
  std::unique_ptr<Loss> loss = MakeLoss(LossKind::kSequenceSoftmaxCrossEntropy);
  Rng rng(5);
  Tensor z({2, 3, 4}), y({2, 3}), g, unused;
  for (int64_t i = 0; i < z.size(); ++i) z[i] = rng.Uniform(-2.0f, 2.0f);
  for (int64_t i = 0; i < y.size(); ++i) y[i] = float(rng.UniformInt(4));
  ASSERT_TRUE(loss->ValidateTarget(z.shape(), y).ok());
  loss->Compute(z, y, &g);
  ASSERT_EQ(g.shape(), z.shape());
  const float h = 1e-2f;
  for (int64_t i = 0; i < z.size(); ++i) {
    const float keep = z[i];
    z[i] = keep + h;
    const double up = loss->Compute(z, y, &unused);
    z[i] = keep - h;
    const double down = loss->Compute(z, y, &unused);
    z[i] = keep;
    EXPECT_NEAR(g[i], (up - down) / (2 * h), 2e-4) << i;
  }

  // Six windows of three steps: accuracy counts the 18 steps.
  Tensor x({6, 3, 4}), t({6, 3});
  for (int64_t i = 0; i < 18; ++i) {
    x[i * 4 + rng.UniformInt(4)] = 1;
    t[i] = float(rng.UniformInt(4));
  }
  auto data = TensorDataset::Create(x.Clone(), t.Clone(), 0);
  ASSERT_TRUE(data.ok()) << data.status();
  auto result = Evaluate(model->get(), **data, 4);
  ASSERT_TRUE(result.ok()) << result.status();
  const Tensor& out = (*model)->Forward(x, Mode::kEval);
  const int64_t correct = loss->CountCorrect(out, t);
  EXPECT_DOUBLE_EQ(result->accuracy, double(correct) / 18);
  EXPECT_NEAR(result->loss, loss->Compute(out, t, &unused), 1e-5);
  EXPECT_EQ(result->samples, 6);
}

}  // namespace
}  // namespace nnlab

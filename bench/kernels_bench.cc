// Kernel benchmarks: the GEMM-shaped products of the workloads' layers,
// elementwise activations, every optimizer's update, conv2d (im2col +
// GEMM), the LSTM layer and a whole training step, all through the real
// core code (MakeLayer, MakeOptimizer, Model, Trainer).
//
// Run: build-bench/bench/kernels_bench [--benchmark_filter=REGEX]
// Each GEMM and layer case runs with 1 and 2 BLAS threads (the last
// argument); items_per_second is samples (rows) per second, and GEMMs
// report GFLOP/s as a counter.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/kernels/blas.h"
#include "core/layers/layer.h"
#include "core/model/model.h"
#include "core/model/zoo.h"
#include "core/optim/optimizer.h"
#include "core/tensor/rng.h"
#include "core/train/trainer.h"

namespace nnlab {
namespace {

void FillUniform(Tensor* t, Rng* rng, float lo = -1.0f, float hi = 1.0f) {
  for (int64_t i = 0; i < t->size(); ++i) (*t)[i] = rng->Uniform(lo, hi);
}

// Restores the BLAS thread count when a benchmark ends.
class ThreadScope {
 public:
  explicit ThreadScope(int n) : previous_(SetBlasThreads(n)) {}
  ~ThreadScope() { SetBlasThreads(previous_); }

 private:
  int previous_;
};

// C[m, n] = op(A) op(B): args m, n, k, trans_a, trans_b, threads. The
// shapes are the dense layers' forward (x W^T), weight-gradient (dy^T x)
// and input-gradient (dy W) products of the workloads.
void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool ta = state.range(3), tb = state.range(4);
  ThreadScope threads(state.range(5));
  Rng rng(1);
  Tensor a({m, k}), b({k, n}), c({m, n});
  FillUniform(&a, &rng);
  FillUniform(&b, &rng);
  for (auto _ : state) {
    Gemm(ta, tb, m, n, k, 1.0f, a.data(), ta ? m : k, b.data(), tb ? k : n,
         0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Gemm)
    ->UseRealTime()
    ->ArgNames({"m", "n", "k", "ta", "tb", "threads"})
    // lecture net, batch 10 and 64: forward, dW, dx of the 784 -> 30 layer.
    ->Args({10, 30, 784, 0, 1, 1})
    ->Args({64, 30, 784, 0, 1, 1})
    ->Args({64, 30, 784, 0, 1, 2})
    ->Args({30, 784, 64, 1, 0, 1})
    ->Args({30, 784, 64, 1, 0, 2})
    ->Args({64, 30, 30, 0, 1, 1})
    // The same forward product computed transposed, y^T = W x^T (PyTorch's
    // addmm calls column-major BLAS, which is this layout).
    ->Args({30, 64, 784, 0, 1, 1})
    ->Args({30, 10, 784, 0, 1, 1})
    // wide MLP, batch 256: 784 -> 1024, 1024 -> 1024, 1024 -> 10.
    ->Args({256, 1024, 784, 0, 1, 1})
    ->Args({256, 1024, 784, 0, 1, 2})
    ->Args({256, 1024, 1024, 0, 1, 1})
    ->Args({256, 1024, 1024, 0, 1, 2})
    ->Args({1024, 1024, 256, 1, 0, 1})
    ->Args({1024, 1024, 256, 1, 0, 2})
    ->Args({256, 1024, 1024, 0, 0, 1})
    ->Args({256, 1024, 1024, 0, 0, 2})
    ->Args({256, 10, 1024, 0, 1, 1})
    ->Args({256, 10, 1024, 0, 1, 2})
    // LSTM 128, batch 64: the recurrent product h W_hh^T per step, and the
    // input product over all 28 steps at once.
    ->Args({64, 512, 128, 0, 1, 1})
    ->Args({64, 512, 128, 0, 1, 2})
    ->Args({1792, 512, 28, 0, 1, 1})
    ->Args({1792, 512, 28, 0, 1, 2})
    // GAN: 256 -> 784 generator layer at batch 64.
    ->Args({64, 784, 256, 0, 1, 1})
    ->Args({64, 784, 256, 0, 1, 2})
    // conv 3x3, 16 -> 16 channels on 28x28: W [16, 144] x col [144, 784].
    ->Args({16, 784, 144, 0, 0, 1})
    ->Args({16, 784, 144, 0, 0, 2})
    // The same with nine samples per product (core/layers/conv2d.cc batches
    // them).
    ->Args({16, 7056, 144, 0, 0, 1})
    ->Args({16, 7056, 144, 0, 0, 2})
    // Thresholds for choosing threads per call shape (core/kernels/blas.cc).
    ->Args({128, 512, 128, 0, 1, 1})
    ->Args({128, 512, 128, 0, 1, 2})
    ->Args({256, 512, 128, 0, 1, 1})
    ->Args({256, 512, 128, 0, 1, 2})
    ->Args({64, 1024, 256, 0, 1, 1})
    ->Args({64, 1024, 256, 0, 1, 2})
    ->Args({256, 256, 256, 0, 1, 1})
    ->Args({256, 256, 256, 0, 1, 2})
    ->Args({128, 1024, 256, 0, 1, 1})
    ->Args({128, 1024, 256, 0, 1, 2});

// A dense layer's forward y = x W^T + b, x [m, k], W [n, k]: args m, n, k,
// path (0: GemmNTBias, which picks the small-product kernel when it pays;
// 1: always OpenBLAS). One BLAS thread. Sets GemmNTBias's thresholds.
void BM_GemmNTBias(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool reference = state.range(3);
  ThreadScope threads(1);
  Rng rng(1);
  Tensor a({m, k}), b({n, k}), bias({n}), c({m, n});
  FillUniform(&a, &rng);
  FillUniform(&b, &rng);
  FillUniform(&bias, &rng);
  for (auto _ : state) {
    if (reference) {
      GemmNTBiasReference(m, n, k, a.data(), k, b.data(), k, bias.data(),
                          c.data(), n);
    } else {
      GemmNTBias(m, n, k, a.data(), k, b.data(), k, bias.data(), c.data(), n);
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}
BENCHMARK(BM_GemmNTBias)
    ->UseRealTime()
    ->ArgNames({"m", "n", "k", "blas"})
    ->ArgsProduct({{10, 64}, {30, 10}, {784, 30}, {0, 1}})
    ->ArgsProduct({{64, 256}, {1, 64}, {256, 784}, {0, 1}})
    ->ArgsProduct({{64}, {128, 256}, {64, 256}, {0, 1}});

LayerSpec Spec(const char* kind, int64_t units = 0) {
  LayerSpec spec;
  spec.kind = kind;
  spec.units = units;
  return spec;
}

std::unique_ptr<Layer> Build(const LayerSpec& spec, const Shape& in, Rng* rng) {
  Shape out;
  auto layer =
      MakeLayer(spec, spec.kind + "0", in, InitKind::kGlorot, rng, &out);
  if (!layer.ok()) return nullptr;
  (*layer)->SetRng(rng);
  return std::move(layer).value();
}

// One layer's forward and backward on a batch: args batch, threads.
void LayerStep(benchmark::State& state, const LayerSpec& spec,
               const Shape& sample) {
  const int64_t batch = state.range(0);
  ThreadScope threads(state.range(1));
  Rng rng(1);
  std::unique_ptr<Layer> layer = Build(spec, sample, &rng);
  if (layer == nullptr) {
    state.SkipWithError(
        ("layer kind " + spec.kind + " does not build").c_str());
    return;
  }
  Shape shape = {batch};
  for (int64_t d : sample) shape.push_back(d);
  Tensor x(shape), y, dy, dx;
  FillUniform(&x, &rng);
  layer->Forward(x, &y, Mode::kTrain);
  dy.Resize(y.shape());
  FillUniform(&dy, &rng);
  for (auto _ : state) {
    layer->Forward(x, &y, Mode::kTrain);
    layer->Backward(dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

// Forward only (inference), args batch, threads.
void LayerForward(benchmark::State& state, const LayerSpec& spec,
                  const Shape& sample) {
  const int64_t batch = state.range(0);
  ThreadScope threads(state.range(1));
  Rng rng(1);
  std::unique_ptr<Layer> layer = Build(spec, sample, &rng);
  if (layer == nullptr) {
    state.SkipWithError(
        ("layer kind " + spec.kind + " does not build").c_str());
    return;
  }
  Shape shape = {batch};
  for (int64_t d : sample) shape.push_back(d);
  Tensor x(shape), y;
  FillUniform(&x, &rng);
  for (auto _ : state) {
    layer->Forward(x, &y, Mode::kEval);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_DenseStep_784x30(benchmark::State& state) {
  LayerStep(state, Spec("dense", 30), {784});
}
BENCHMARK(BM_DenseStep_784x30)->UseRealTime()->ArgsProduct({{10, 64}, {1, 2}});

void BM_DenseStep_1024x1024(benchmark::State& state) {
  LayerStep(state, Spec("dense", 1024), {1024});
}
BENCHMARK(BM_DenseStep_1024x1024)->UseRealTime()->ArgsProduct({{256}, {1, 2}});

// Elementwise activations on [batch, 1024]: forward + backward, 1 thread.
void Activation(benchmark::State& state, const char* kind) {
  LayerStep(state, Spec(kind), {1024});
  state.SetBytesProcessed(state.iterations() * state.range(0) * 1024 * 4 * 5);
}
void BM_Sigmoid(benchmark::State& state) { Activation(state, "sigmoid"); }
void BM_Tanh(benchmark::State& state) { Activation(state, "tanh"); }
void BM_Relu(benchmark::State& state) { Activation(state, "relu"); }
BENCHMARK(BM_Sigmoid)->Args({256, 1});
BENCHMARK(BM_Tanh)->Args({256, 1});
BENCHMARK(BM_Relu)->Args({256, 1});

void BM_BatchNormStep(benchmark::State& state) {
  LayerStep(state, Spec("batch_norm"), {1024});
}
BENCHMARK(BM_BatchNormStep)->Args({256, 1});

void BM_DropoutStep(benchmark::State& state) {
  LayerSpec spec = Spec("dropout");
  spec.keep_prob = 0.5f;
  LayerStep(state, spec, {1024});
}
BENCHMARK(BM_DropoutStep)->Args({256, 1});

// conv 3x3 pad 1, 16 -> 16 channels on [16, 28, 28] (resnet-small's first
// block): im2col + GEMM forward and backward.
void BM_Conv2dStep(benchmark::State& state) {
  LayerSpec spec = Spec("conv2d");
  spec.filters = 16;
  spec.kernel = 3;
  spec.padding = 1;
  LayerStep(state, spec, {16, 28, 28});
}
BENCHMARK(BM_Conv2dStep)->UseRealTime()->ArgsProduct({{64}, {1, 2}});

void BM_Conv2dForward(benchmark::State& state) {
  LayerSpec spec = Spec("conv2d");
  spec.filters = 16;
  spec.kernel = 3;
  spec.padding = 1;
  LayerForward(state, spec, {16, 28, 28});
}
BENCHMARK(BM_Conv2dForward)->UseRealTime()->ArgsProduct({{64}, {1, 2}});

// LSTM 128 over 28 steps of 28 features (lstm-rows), many-to-one.
void BM_LstmStep(benchmark::State& state) {
  LayerStep(state, Spec("lstm", 128), {28, 28});
}
BENCHMARK(BM_LstmStep)->UseRealTime()->ArgsProduct({{64}, {1, 2}});

void BM_LstmForward(benchmark::State& state) {
  LayerForward(state, Spec("lstm", 128), {28, 28});
}
BENCHMARK(BM_LstmForward)->UseRealTime()->ArgsProduct({{64}, {1, 2}});

// One optimizer update over the wide MLP's parameters (1.86 M floats).
void BM_OptimizerStep(benchmark::State& state) {
  const auto kind = static_cast<OptimizerKind>(state.range(0));
  Rng rng(1);
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(Build(Spec("dense", 1024), {784}, &rng));
  layers.push_back(Build(Spec("dense", 1024), {1024}, &rng));
  layers.push_back(Build(Spec("dense", 10), {1024}, &rng));
  std::vector<Param> params;
  int64_t floats = 0;
  for (auto& layer : layers) {
    for (Param& p : layer->Params()) {
      FillUniform(p.grad, &rng, -1e-3f, 1e-3f);
      floats += p.value->size();
      params.push_back(p);
    }
  }
  OptimizerConfig config;
  config.kind = kind;
  std::unique_ptr<Optimizer> opt = MakeOptimizer(config, params);
  state.SetLabel(OptimizerName(kind));
  for (auto _ : state) {
    opt->Step(1e-6f);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * floats);
}
BENCHMARK(BM_OptimizerStep)->DenseRange(0, 6);

// Gradient norm (the non-finite check and clipping read it every step).
void BM_GlobalGradNorm(benchmark::State& state) {
  Rng rng(1);
  std::unique_ptr<Layer> layer = Build(Spec("dense", 1024), {1024}, &rng);
  std::vector<Param> params = layer->Params();
  FillUniform(params[0].grad, &rng);
  for (auto _ : state) benchmark::DoNotOptimize(GlobalGradNorm(params));
  state.SetItemsProcessed(state.iterations() * params[0].grad->size());
}
BENCHMARK(BM_GlobalGradNorm);

// The per-step reductions over a tensor: the model-input check and the
// squared norm the statistics and gradient norm take. Arg: 0 AllFinite,
// 1 SquaredNorm, 2 SquaredDistance; on 784 x 64 values (an MNIST batch).
void BM_TensorReduction(benchmark::State& state) {
  Rng rng(1);
  Tensor x({64, 784}), y({64, 784});
  FillUniform(&x, &rng);
  FillUniform(&y, &rng);
  for (auto _ : state) {
    switch (state.range(0)) {
      case 0:
        benchmark::DoNotOptimize(x.AllFinite());
        break;
      case 1:
        benchmark::DoNotOptimize(x.SquaredNorm());
        break;
      default:
        benchmark::DoNotOptimize(x.SquaredDistance(y));
    }
  }
  state.SetItemsProcessed(state.iterations() * x.size());
}
BENCHMARK(BM_TensorReduction)->DenseRange(0, 2);

// A batch of 64 MNIST images gathered into floats (every training step's
// input): bytes to [0, 1] and the copy.
void BM_GatherMnistBatch(benchmark::State& state) {
  std::vector<uint8_t> pixels(1000 * 784), labels(1000);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = i * 37 % 256;
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = i % 10;
  ImageDataset data(std::move(pixels), std::move(labels), {1, 28, 28}, 10);
  std::vector<int64_t> idx(64);
  for (int64_t i = 0; i < 64; ++i) idx[i] = i * 13 % 1000;
  Tensor x, y;
  for (auto _ : state) {
    data.Gather(idx, &x, &y);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * 64 * 784);
}
BENCHMARK(BM_GatherMnistBatch);

// A whole Trainer::TrainStep of the lecture network (statistics off and
// on): the per-step overhead outside the matrix products. Args: batch,
// threads, statistics.
void BM_LectureTrainStep(benchmark::State& state) {
  const int64_t batch = state.range(0);
  ThreadScope threads(state.range(1));
  const bool stats_on = state.range(2);
  ModelSpec spec;
  spec.input_shape = {784};
  for (int64_t units : {30, 30, 30, 30}) {
    spec.layers.push_back(Spec("dense", units));
    spec.layers.push_back(Spec("sigmoid"));
  }
  spec.layers.push_back(Spec("dense", 10));
  auto model = std::move(Model::Build(spec)).value();
  TrainOptions options;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1f;
  options.batch_size = batch;
  auto trainer = std::move(Trainer::Create(model.get(), options)).value();
  Rng rng(1);
  Tensor x({batch, 784}), y({batch});
  FillUniform(&x, &rng, 0.0f, 1.0f);
  for (int64_t i = 0; i < batch; ++i) y[i] = static_cast<float>(i % 10);
  StepStats stats;
  for (auto _ : state) {
    if (!trainer->TrainStep(x, y, stats_on, &stats).ok()) {
      state.SkipWithError("TrainStep failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_LectureTrainStep)
    ->UseRealTime()
    ->ArgNames({"batch", "threads", "stats"})
    ->ArgsProduct({{10, 64}, {1, 2}, {0, 1}});

// resnet-small's evaluation-mode forward pass (Fashion-MNIST residual CNN,
// batch 64): convolutions with batch norm, ReLU and the shortcut sums as
// inference runs them. Args: batch, threads.
void BM_ResnetSmallForward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  ThreadScope threads(state.range(1));
  auto model = std::move(Model::Build(FashionResidualCnn())).value();
  Rng rng(1);
  Tensor x({batch, 1, 28, 28});
  FillUniform(&x, &rng, 0.0f, 1.0f);
  for (auto _ : state) {
    benchmark::DoNotOptimize(model->Forward(x, Mode::kEval).data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_ResnetSmallForward)
    ->UseRealTime()
    ->ArgNames({"batch", "threads"})
    ->ArgsProduct({{64}, {1, 2}});

// wide-mlp-bn-dropout's evaluation-mode forward pass ([784,1024,1024,10],
// dense, batch norm, ReLU, dropout 0.5; batch 256). Args: batch, threads.
void BM_WideMlpBnDropoutForward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  ThreadScope threads(state.range(1));
  ModelSpec spec;
  spec.input_shape = {784};
  for (int64_t units : {1024, 1024}) {
    spec.layers.push_back(Spec("dense", units));
    spec.layers.push_back(Spec("batch_norm"));
    spec.layers.push_back(Spec("relu"));
    LayerSpec dropout = Spec("dropout");
    dropout.keep_prob = 0.5f;
    spec.layers.push_back(dropout);
  }
  spec.layers.push_back(Spec("dense", 10));
  auto model = std::move(Model::Build(spec)).value();
  Rng rng(1);
  Tensor x({batch, 784});
  FillUniform(&x, &rng, 0.0f, 1.0f);
  for (auto _ : state) {
    benchmark::DoNotOptimize(model->Forward(x, Mode::kEval).data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}
BENCHMARK(BM_WideMlpBnDropoutForward)
    ->UseRealTime()
    ->ArgNames({"batch", "threads"})
    ->ArgsProduct({{256}, {1, 2}});

}  // namespace
}  // namespace nnlab

BENCHMARK_MAIN();

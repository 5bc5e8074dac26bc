// Conv2D's paths against a direct reference: oneDNN's direct and Winograd
// primitives and im2col + GEMM (with its "same" stride-1 input gradient, im2col
// of dy with the flipped kernel), with the batch split across BLAS threads,
// must give the values of the textbook sums y = b + sum W x, dW = sum dy x, db
// = sum dy, dx = sum W dy, and finite differences.
#include <cmath>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/kernels/blas.h"
#include "core/kernels/isa.h"
#include "core/kernels/onednn_conv.h"
#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"

namespace nnlab {
namespace {

using testing_util::CheckLayerGradients;
using testing_util::ConvCase;
using testing_util::FillNormal;

std::unique_ptr<Layer> BuildConv(const ConvCase& c, Shape* out) {
  LayerSpec spec;
  spec.kind = "conv2d";
  spec.filters = c.filters;
  spec.kernel = c.kernel;
  spec.stride = c.stride;
  spec.padding = c.padding;
  Rng rng(7);
  auto layer = MakeLayer(spec, "conv0", c.in(), InitKind::kGlorot, &rng, out);
  EXPECT_TRUE(layer.ok()) << layer.status();
  return std::move(layer).value();
}

constexpr ConvPath kPaths[] = {ConvPath::kIm2col, ConvPath::kOneDnn,
                               ConvPath::kWinograd};

const char* PathName(ConvPath path) {
  switch (path) {
    case ConvPath::kOneDnn:
      return "onednn";
    case ConvPath::kWinograd:
      return "winograd";
    default:
      return "im2col";
  }
}

// Every path at 1 and 2 threads.
std::vector<std::pair<ConvPath, int>> PathRuns() {
  std::vector<std::pair<ConvPath, int>> runs;
  for (ConvPath path : kPaths) {
    for (int threads : {1, 2}) runs.emplace_back(path, threads);
  }
  return runs;
}

class ConvPathTest : public ::testing::TestWithParam<ConvCase> {
 protected:
  void TearDown() override {
    SetBlasThreads(saved_threads_);
    SetConvPath(saved_path_);
  }
  int saved_threads_ = BlasThreads();
  ConvPath saved_path_ = CurrentConvPath();
};

// Forward and all gradients against direct sums, on every path and on 1
// and 2 threads, for a batch of n.
void CheckDirectSums(const ConvCase& c, int64_t n) {
  const int64_t ch = c.input[0], h = c.input[1], w = c.input[2];
  for (auto [path, threads] : PathRuns()) {
    SCOPED_TRACE(testing::Message()
                 << PathName(path) << ", " << threads << " threads");
    SetConvPath(path);
    SetBlasThreads(threads);
    Shape out;
    auto conv = BuildConv(c, &out);
    const int64_t f_n = out[0], ho = out[1], wo = out[2], k = c.kernel;
    Rng rng(11);
    auto params = conv->Params();
    Tensor& wt = *params[0].value;
    Tensor& bias = *params[1].value;
    FillNormal(&bias, &rng);
    Tensor x({n, ch, h, w});
    FillNormal(&x, &rng);
    Tensor dy({n, f_n, ho, wo});
    FillNormal(&dy, &rng);
    Tensor y, dx;
    conv->Forward(x, &y, Mode::kTrain);
    conv->Backward(dy, &dx);

    std::vector<double> ref_dw(wt.size(), 0.0), ref_db(f_n, 0.0);
    std::vector<double> ref_dx(x.size(), 0.0);
    double max_err = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t f = 0; f < f_n; ++f) {
        for (int64_t oh = 0; oh < ho; ++oh) {
          for (int64_t ow = 0; ow < wo; ++ow) {
            const int64_t yi = ((i * f_n + f) * ho + oh) * wo + ow;
            double acc = bias[f];
            ref_db[f] += dy[yi];
            for (int64_t cc = 0; cc < ch; ++cc) {
              for (int64_t ki = 0; ki < k; ++ki) {
                for (int64_t kj = 0; kj < k; ++kj) {
                  const int64_t ih = oh * c.stride - c.padding + ki;
                  const int64_t iw = ow * c.stride - c.padding + kj;
                  if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                  const int64_t xi = ((i * ch + cc) * h + ih) * w + iw;
                  const int64_t wi = ((f * ch + cc) * k + ki) * k + kj;
                  acc += double(wt[wi]) * x[xi];
                  ref_dw[wi] += double(dy[yi]) * x[xi];
                  ref_dx[xi] += double(wt[wi]) * dy[yi];
                }
              }
            }
            max_err = std::max(max_err, std::abs(acc - y[yi]));
          }
        }
      }
    }
    EXPECT_LT(max_err, 1e-4) << "forward, threads " << threads;
    const Tensor& dw = *params[0].grad;
    const Tensor& db = *params[1].grad;
    for (int64_t j = 0; j < dw.size(); ++j) {
      ASSERT_NEAR(dw[j], ref_dw[j], 1e-3)
          << "dW " << j << " threads " << threads;
    }
    for (int64_t f = 0; f < f_n; ++f) {
      ASSERT_NEAR(db[f], ref_db[f], 1e-3)
          << "db " << f << " threads " << threads;
    }
    ASSERT_EQ(dx.shape(), x.shape());
    for (int64_t j = 0; j < dx.size(); ++j) {
      ASSERT_NEAR(dx[j], ref_dx[j], 1e-4)
          << "dx " << j << " threads " << threads;
    }
  }
}

TEST_P(ConvPathTest, MatchesDirectSums) { CheckDirectSums(GetParam(), 5); }

TEST_P(ConvPathTest, MatchesFiniteDifferences) {
  const ConvCase& c = GetParam();
  for (auto [path, threads] : PathRuns()) {
    SCOPED_TRACE(testing::Message()
                 << PathName(path) << ", " << threads << " threads");
    SetConvPath(path);
    SetBlasThreads(threads);
    Shape out;
    auto conv = BuildConv(c, &out);
    Rng rng(5);
    for (const Param& p : conv->Params()) FillNormal(p.value, &rng, 0.3f);
    Shape batched{3};
    batched.insert(batched.end(), c.input.begin(), c.input.end());
    Tensor x(batched);
    FillNormal(&x, &rng);
    CheckLayerGradients(conv.get(), &x);
  }
}

// The 1- and 2-thread runs split the dW and db sums differently; each is
// deterministic, and they agree to rounding.
TEST(ConvPathTest, RepeatedRunsAreIdentical) {
  const int saved = BlasThreads();
  const ConvPath saved_path = CurrentConvPath();
  const ConvCase c{4, 3, 1, 1, {3, 9, 8}};
  for (auto [path, threads] : PathRuns()) {
    SetConvPath(path);
    SetBlasThreads(threads);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      Shape out;
      auto conv = BuildConv(c, &out);
      Rng rng(3);
      Tensor x({7, 3, 9, 8});
      FillNormal(&x, &rng);
      Tensor dy({7, 4, 9, 8});
      FillNormal(&dy, &rng);
      Tensor y, dx;
      conv->Forward(x, &y, Mode::kTrain);
      conv->Backward(dy, &dx);
      std::vector<float> all(y.data(), y.data() + y.size());
      all.insert(all.end(), dx.data(), dx.data() + dx.size());
      for (const Param& p : conv->Params()) {
        all.insert(all.end(), p.grad->data(), p.grad->data() + p.grad->size());
      }
      if (run == 0) {
        first = all;
      } else {
        EXPECT_EQ(all, first) << PathName(path) << ", threads " << threads;
      }
    }
  }
  SetBlasThreads(saved);
  SetConvPath(saved_path);
}

// A first layer gets no input gradient: its weight and bias gradients are
// those of a layer that also computes one (on oneDNN the two share one
// copy of dy in the workspace when there is an input gradient).
TEST(ConvPathTest, WeightGradientsWithoutInputGradientAreTheSame) {
  const int saved = BlasThreads();
  const ConvPath saved_path = CurrentConvPath();
  const ConvCase c{16, 3, 1, 1, {16, 10, 9}};
  for (auto [path, threads] : PathRuns()) {
    SetConvPath(path);
    SetBlasThreads(threads);
    std::vector<float> grads[2];
    for (int with_dx = 0; with_dx < 2; ++with_dx) {
      Shape out;
      auto conv = BuildConv(c, &out);
      Rng rng(5);
      Tensor x({6, 16, 10, 9}), dy({6, 16, 10, 9}), y, dx;
      FillNormal(&x, &rng);
      FillNormal(&dy, &rng);
      conv->Forward(x, &y, Mode::kTrain);
      conv->Backward(dy, with_dx ? &dx : nullptr);
      for (const Param& p : conv->Params()) {
        grads[with_dx].insert(grads[with_dx].end(), p.grad->data(),
                              p.grad->data() + p.grad->size());
      }
    }
    EXPECT_EQ(grads[0], grads[1]) << PathName(path) << ", threads " << threads;
  }
  SetBlasThreads(saved);
  SetConvPath(saved_path);
}

// Where the CPU has AVX-512, 3x3 stride-1 convolutions over channel
// multiples of 16 run Winograd's algorithm on the winograd (and default)
// path, and nothing else does.
TEST(ConvPathTest, WinogradWhereOneDnnHasIt) {
  const ConvPath saved_path = CurrentConvPath();
  const bool avx512 = MaxIsa() >= Isa::kAvx512;
  struct Case {
    ConvGeometry g;
    bool winograd;
  } cases[] = {
      {{8, 16, 14, 14, 16, 3, 1, 1, 14, 14}, avx512},
      {{8, 64, 7, 7, 64, 3, 1, 1, 7, 7}, avx512},
      {{8, 1, 28, 28, 16, 3, 1, 1, 28, 28}, false},   // 1 input channel
      {{8, 16, 28, 28, 32, 3, 2, 1, 14, 14}, false},  // stride 2
      {{8, 16, 14, 14, 32, 1, 1, 0, 14, 14}, false},  // 1x1
  };
  for (ConvPath path :
       {ConvPath::kWinograd, ConvPath::kAuto, ConvPath::kOneDnn}) {
    SetConvPath(path);
    for (const Case& c : cases) {
      auto conv = OneDnnConv::Create(c.g);
      ASSERT_NE(conv, nullptr);
      EXPECT_EQ(conv->winograd(), c.winograd && path != ConvPath::kOneDnn)
          << PathName(path) << ", " << c.g.c << " -> " << c.g.f << " channels, "
          << c.g.k << "x" << c.g.k << " stride " << c.g.s;
    }
  }
  SetConvPath(saved_path);
}

// Batch sizes that change every call (evaluation and prediction batches
// do): more sizes than the layer caches oneDNN primitives for, revisited
// after eviction, each matching the im2col path.
TEST(ConvPathTest, ChangingBatchSizesMatchIm2col) {
  const ConvPath saved_path = CurrentConvPath();
  const int saved_threads = BlasThreads();
  const ConvCase c{4, 3, 2, 1, {3, 9, 8}};
  for (int threads : {1, 2}) {
    SetBlasThreads(threads);
    Shape out;
    SetConvPath(ConvPath::kOneDnn);
    auto onednn = BuildConv(c, &out);
    SetConvPath(ConvPath::kIm2col);
    auto im2col = BuildConv(c, &out);
    Rng rng(9);
    for (int64_t n : {5, 1, 3, 2, 4, 6, 7, 5, 1}) {
      Tensor x({n, 3, 9, 8});
      FillNormal(&x, &rng);
      Tensor y1, y2;
      onednn->Forward(x, &y1, Mode::kEval);
      im2col->Forward(x, &y2, Mode::kEval);
      ASSERT_EQ(y1.shape(), y2.shape());
      for (int64_t j = 0; j < y1.size(); ++j) {
        ASSERT_NEAR(y1[j], y2[j], 1e-4)
            << "batch " << n << ", " << threads << " threads, element " << j;
      }
    }
  }
  SetConvPath(saved_path);
  SetBlasThreads(saved_threads);
}

// resnet-small's shapes (16-64 channels, 7x7 to 28x28 maps): against
// direct sums only (finite differences would take minutes here; and
// Winograd's rounding, within 1e-4 of the sums, is too coarse for float
// finite differences, so the stride-1 3x3 cases, which run it on
// AVX-512, are checked against the sums alone).
class ConvResnetShapeTest : public ConvPathTest {};

TEST_P(ConvResnetShapeTest, MatchesDirectSums) {
  CheckDirectSums(GetParam(), 4);
}

INSTANTIATE_TEST_SUITE_P(
    Resnet, ConvResnetShapeTest,
    ::testing::Values(ConvCase{16, 3, 1, 1, {16, 28, 28}},   // block 1
                      ConvCase{32, 3, 2, 1, {16, 28, 28}},   // down 28 -> 14
                      ConvCase{32, 1, 2, 0, {16, 28, 28}},   // 1x1 shortcut
                      ConvCase{32, 3, 1, 1, {32, 14, 14}},   // block 2
                      ConvCase{64, 3, 1, 1, {64, 7, 7}},     // block 3
                      ConvCase{64, 1, 1, 0, {32, 14, 14}}),  // pointwise
    [](const ::testing::TestParamInfo<ConvCase>& info) {
      return "Case" + std::to_string(info.index);
    });

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvPathTest,
    ::testing::Values(ConvCase{4, 3, 1, 1, {3, 6, 5}},   // same 3x3
                      ConvCase{2, 5, 1, 2, {2, 7, 6}},   // same 5x5
                      ConvCase{3, 3, 1, 1, {1, 4, 4}},   // same, one channel
                      ConvCase{3, 3, 2, 1, {2, 7, 6}},   // strided, col2im
                      ConvCase{3, 3, 1, 0, {2, 5, 5}},   // valid, col2im
                      ConvCase{4, 1, 1, 0, {3, 3, 3}},   // pointwise
                      ConvCase{2, 1, 2, 0, {3, 5, 5}}),  // strided 1x1
    [](const ::testing::TestParamInfo<ConvCase>& info) {
      return "Case" + std::to_string(info.index);
    });

}  // namespace
}  // namespace nnlab

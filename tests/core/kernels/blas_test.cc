// Gemm (core/kernels/blas.h) on each library path against a plain triple
// loop in double, for all four transpose combinations, odd shapes, strided
// rows, and the alpha/beta forms the layers use; and bit-identical results
// when a product is repeated.
#include "core/kernels/blas.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/model/model.h"
#include "core/tensor/rng.h"
#include "core/train/trainer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

struct Shape {
  int64_t m, n, k;
};

// Restores the path and thread count a test changed.
class BlasTest : public testing::TestWithParam<GemmPath> {
 protected:
  void SetUp() override {
    saved_path_ = SetGemmPath(GetParam());
    saved_threads_ = BlasThreads();
  }
  void TearDown() override {
    SetGemmPath(saved_path_);
    SetBlasThreads(saved_threads_);
  }
  GemmPath saved_path_ = GemmPath::kAuto;
  int saved_threads_ = 1;
};

// Stored operands of C[m x n] = alpha op(A) op(B) + beta C, with rows 3
// floats wider than needed (NaN in the gap: never read).
struct Problem {
  Problem(bool ta, bool tb, Shape s, uint64_t seed)
      : trans_a(ta), trans_b(tb), shape(s) {
    const int64_t a_rows = ta ? s.k : s.m, a_cols = ta ? s.m : s.k;
    const int64_t b_rows = tb ? s.n : s.k, b_cols = tb ? s.k : s.n;
    lda = a_cols + 3;
    ldb = b_cols + 3;
    ldc = s.n + 3;
    Rng rng(seed);
    a.assign(a_rows * lda, NAN);
    b.assign(b_rows * ldb, NAN);
    c.assign(s.m * ldc, -7.0f);
    for (int64_t i = 0; i < a_rows; ++i) {
      for (int64_t j = 0; j < a_cols; ++j) a[i * lda + j] = rng.Uniform(-1, 1);
    }
    for (int64_t i = 0; i < b_rows; ++i) {
      for (int64_t j = 0; j < b_cols; ++j) b[i * ldb + j] = rng.Uniform(-1, 1);
    }
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) c[i * ldc + j] = rng.Uniform(-1, 1);
    }
  }
  float A(int64_t i, int64_t p) const {
    return trans_a ? a[p * lda + i] : a[i * lda + p];
  }
  float B(int64_t p, int64_t j) const {
    return trans_b ? b[j * ldb + p] : b[p * ldb + j];
  }
  std::vector<float> Run(float alpha, float beta) const {
    std::vector<float> out = c;
    Gemm(trans_a, trans_b, shape.m, shape.n, shape.k, alpha, a.data(), lda,
         b.data(), ldb, beta, out.data(), ldc);
    return out;
  }

  bool trans_a, trans_b;
  Shape shape;
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;
};

// Checks got against the double-precision triple loop. Tolerance: the
// float rounding of a k-term dot product is at most ~k * 2^-24 times
// sum |alpha a b| + |beta c| (with FMA or without); 2.5e-7 * (k + 2)
// times that sum allows about 4x that bound and nothing more, so a wrong
// transpose, stride or beta shows up as errors of order 1.
void ExpectMatchesReference(const Problem& p, float alpha, float beta) {
  const auto [m, n, k] = p.shape;
  SCOPED_TRACE(testing::Message()
               << m << "x" << n << "x" << k << (p.trans_a ? " T" : " N")
               << (p.trans_b ? "T" : "N") << " alpha " << alpha << " beta "
               << beta);
  Problem q = p;
  // beta = 0 must not read C (BLAS semantics): NaN there must not leak.
  if (beta == 0.0f) {
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) q.c[i * q.ldc + j] = NAN;
    }
  }
  const std::vector<float> got = q.Run(alpha, beta);
  int failures = 0;
  for (int64_t i = 0; i < m && failures < 5; ++i) {
    for (int64_t j = 0; j < q.ldc; ++j) {
      const float g = got[i * q.ldc + j];
      if (j >= n) {
        EXPECT_EQ(g, -7.0f) << "wrote outside C at " << i << "," << j;
        continue;
      }
      double sum = 0, scale = 0;
      for (int64_t l = 0; l < k; ++l) {
        const double t = double(q.A(i, l)) * q.B(l, j);
        sum += t;
        scale += std::abs(t);
      }
      const double cij = beta == 0.0f ? 0.0 : q.c[i * q.ldc + j];
      const double want = alpha * sum + beta * cij;
      scale = std::abs(alpha) * scale + std::abs(beta * cij);
      if (!(std::abs(g - want) <= 2.5e-7 * (k + 2) * scale)) {
        ADD_FAILURE() << "C[" << i << "," << j << "] = " << g << ", want "
                      << want;
        ++failures;
      }
    }
  }
}

const Shape kShapes[] = {
    {1, 1, 1},    {7, 13, 5},     {64, 30, 784},   {30, 64, 784}, {64, 10, 30},
    {16, 784, 9}, {32, 196, 144}, {128, 256, 192}, {64, 4, 784},  {1, 30, 64}};

TEST_P(BlasTest, MatchesTripleLoopOnEveryTransposeAndShape) {
  for (int threads : {1, 2}) {
    SetBlasThreads(threads);
    SCOPED_TRACE(testing::Message() << threads << " threads");
    for (const Shape& s : kShapes) {
      for (int t = 0; t < 4; ++t) {
        const Problem p(t & 1, t & 2, s, s.m * 7919 + s.n * 31 + s.k + t);
        ExpectMatchesReference(p, 1.0f, 0.0f);   // y = x W
        ExpectMatchesReference(p, 1.0f, 1.0f);   // dW += x^T dy
        ExpectMatchesReference(p, 0.5f, -1.5f);  // general alpha, beta
      }
    }
  }
}

TEST_P(BlasTest, ZeroInnerDimensionScalesC) {
  const Problem p(false, false, {3, 4, 0}, 1);
  const std::vector<float> got = p.Run(2.0f, 0.5f);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 4; ++j) {
      EXPECT_EQ(got[i * p.ldc + j], 0.5f * p.c[i * p.ldc + j]);
    }
  }
}

// Same inputs, same thread count: the same bits, also when the operands
// sit at other addresses (another run's allocations) and alignments.
TEST_P(BlasTest, RepeatedProductIsBitIdentical) {
  for (int threads : {1, 2}) {
    SetBlasThreads(threads);
    for (const Shape& s : {Shape{64, 30, 784}, Shape{256, 1024, 784}}) {
      for (int t = 0; t < 4; ++t) {
        SCOPED_TRACE(testing::Message() << threads << " threads, " << s.m << "x"
                                        << s.n << "x" << s.k << " " << t);
        const Problem p(t & 1, t & 2, s, 99 + t);
        const std::vector<float> first = p.Run(1.0f, 1.0f);
        EXPECT_EQ(std::memcmp(first.data(), p.Run(1.0f, 1.0f).data(),
                              first.size() * sizeof(float)),
                  0);
        // The same matrices, one float further into their buffers.
        std::vector<float> a(p.a.size() + 1), b(p.b.size() + 1),
            c(p.c.size() + 1);
        std::memcpy(a.data() + 1, p.a.data(), p.a.size() * sizeof(float));
        std::memcpy(b.data() + 1, p.b.data(), p.b.size() * sizeof(float));
        std::memcpy(c.data() + 1, p.c.data(), p.c.size() * sizeof(float));
        Gemm(p.trans_a, p.trans_b, s.m, s.n, s.k, 1.0f, a.data() + 1, p.lda,
             b.data() + 1, p.ldb, 1.0f, c.data() + 1, p.ldc);
        EXPECT_EQ(std::memcmp(first.data(), c.data() + 1,
                              first.size() * sizeof(float)),
                  0);
      }
    }
  }
}

// Same seed, same thread count: the same losses, bit for bit, on a model
// whose products are layer-sized (784-256-256-10 at batch 64: oneDNN in
// auto, two threads for the 256x256 ones). The losses are printed too, so
// two runs of this binary can be compared.
TEST_P(BlasTest, SameSeedGivesBitIdenticalTrainingLosses) {
  SetBlasThreads(2);
  std::vector<double> losses[2];
  for (int run = 0; run < 2; ++run) {
    ModelSpec spec;
    spec.input_shape = {784};
    for (int64_t units : {256, 256, 10}) {
      LayerSpec dense;
      dense.kind = "dense";
      dense.units = units;
      spec.layers.push_back(dense);
      if (units != 10) {
        LayerSpec relu;
        relu.kind = "relu";
        spec.layers.push_back(relu);
      }
    }
    spec.init = InitKind::kScaledNormal;
    spec.seed = 42;
    auto model = std::move(Model::Build(spec)).value();
    TrainOptions options;
    options.optimizer.kind = OptimizerKind::kAdam;
    auto trainer = std::move(Trainer::Create(model.get(), options)).value();
    Rng rng(5);
    Tensor x({64, 784}), y({64});
    StepStats stats;
    for (int step = 0; step < 8; ++step) {
      for (int64_t i = 0; i < x.size(); ++i) x[i] = rng.Uniform(0, 1);
      for (int64_t i = 0; i < 64; ++i) y[i] = float(rng.UniformInt(10));
      ASSERT_TRUE(trainer->TrainStep(x, y, true, &stats).ok());
      losses[run].push_back(stats.loss);
    }
  }
  EXPECT_EQ(losses[0], losses[1]);
  std::printf("losses:");
  for (double loss : losses[0]) std::printf(" %a", loss);
  std::printf("\n");
}

TEST(BlasPathTest, ForcedPathsAndAutoChoice) {
  const GemmPath saved = SetGemmPath(GemmPath::kOpenBlas);
  EXPECT_EQ(GemmLibraryFor(false, true, 256, 1024, 784),
            GemmLibrary::kOpenBlas);
  SetGemmPath(GemmPath::kOneDnn);
  EXPECT_EQ(GemmLibraryFor(false, false, 1, 1, 1), GemmLibrary::kOneDnn);
  SetGemmPath(GemmPath::kAuto);
  // Every layer-sized product on oneDNN; tiny ones stay on OpenBLAS.
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      EXPECT_EQ(GemmLibraryFor(ta, tb, 256, 1024, 784), GemmLibrary::kOneDnn);
      EXPECT_EQ(GemmLibraryFor(ta, tb, 64, 30, 784), GemmLibrary::kOneDnn);
      EXPECT_EQ(GemmLibraryFor(ta, tb, 64, 512, 128), GemmLibrary::kOneDnn);
      EXPECT_EQ(GemmLibraryFor(ta, tb, 8, 16, 8), GemmLibrary::kOpenBlas);
      EXPECT_EQ(GemmLibraryFor(ta, tb, 1, 1, 1), GemmLibrary::kOpenBlas);
    }
  }
  // A B^T with a few output columns stays on OpenBLAS, other forms not.
  EXPECT_EQ(GemmLibraryFor(false, true, 64, 4, 784), GemmLibrary::kOpenBlas);
  EXPECT_EQ(GemmLibraryFor(false, false, 64, 4, 784), GemmLibrary::kOneDnn);
  EXPECT_EQ(GemmLibraryFor(false, true, 64, 10, 784), GemmLibrary::kOneDnn);
  // A B^T from 64 inputs goes to oneDNN however small; other forms not.
  EXPECT_EQ(GemmLibraryFor(false, true, 1, 30, 64), GemmLibrary::kOneDnn);
  EXPECT_EQ(GemmLibraryFor(false, false, 1, 30, 64), GemmLibrary::kOpenBlas);
  EXPECT_EQ(GemmLibraryFor(false, true, 10, 30, 30), GemmLibrary::kOpenBlas);
  SetGemmPath(saved);
}

INSTANTIATE_TEST_SUITE_P(Paths, BlasTest,
                         testing::Values(GemmPath::kAuto, GemmPath::kOpenBlas,
                                         GemmPath::kOneDnn),
                         [](const testing::TestParamInfo<GemmPath>& info) {
                           switch (info.param) {
                             case GemmPath::kAuto:
                               return "Auto";
                             case GemmPath::kOpenBlas:
                               return "OpenBlas";
                             case GemmPath::kOneDnn:
                               return "OneDnn";
                           }
                           return "Unknown";
                         });

}  // namespace
}  // namespace nnlab

// Vectorised elementwise kernels (core/kernels/vec_math.h) against libm and
// formulas in double precision, on every instruction-set path this CPU runs.
#include "core/kernels/vec_math.h"

#include <cmath>
#include <vector>

#include "core/tensor/rng.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

std::vector<const VecKernels*> Paths() {
  std::vector<const VecKernels*> paths = {&PortableVecKernels()};
  if (Avx2VecKernels() != nullptr) paths.push_back(Avx2VecKernels());
  if (Avx512VecKernels() != nullptr) paths.push_back(Avx512VecKernels());
  return paths;
}

// [-20, 20] in steps of 1e-4, plus an odd length so the tail path runs.
std::vector<float> Grid() {
  std::vector<float> x;
  for (int i = -200000; i <= 200000; ++i) x.push_back(i * 1e-4f);
  x.push_back(0.3f);
  return x;
}

double RelErr(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-30);
}

TEST(VecMathTest, ElementwiseMatchesLibm) {
  const std::vector<float> x = Grid();
  const int64_t n = x.size();
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    std::vector<float> e(n), s(n), t(n), x4(n);
    for (int64_t i = 0; i < n; ++i) x4[i] = 4 * x[i];  // [-80, 80].
    k->exp(x4.data(), e.data(), n);
    k->sigmoid(x.data(), s.data(), n);
    k->tanh(x.data(), t.data(), n);
    double e_err = 0, s_err = 0, t_err = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double xd = x[i];
      e_err = std::max(e_err, RelErr(e[i], std::exp(double(x4[i]))));
      s_err = std::max(s_err, RelErr(s[i], 1.0 / (1.0 + std::exp(-xd))));
      t_err = std::max(t_err, RelErr(t[i], std::tanh(xd)));
    }
    EXPECT_LT(e_err, 1e-6);
    EXPECT_LT(s_err, 1e-6);
    EXPECT_LT(t_err, 2e-6);
  }
}

TEST(VecMathTest, EdgeValues) {
  const float in[] = {0.0f, -0.0f, 50.0f, -50.0f, 200.0f, -200.0f, NAN};
  const int64_t n = sizeof(in) / sizeof(in[0]);
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    float t[n], s[n], e[n];
    k->tanh(in, t, n);
    k->sigmoid(in, s, n);
    k->exp(in, e, n);
    EXPECT_EQ(t[0], 0.0f);
    EXPECT_EQ(t[2], 1.0f);
    EXPECT_EQ(t[3], -1.0f);
    EXPECT_TRUE(std::isnan(t[6]));
    EXPECT_EQ(s[0], 0.5f);
    EXPECT_EQ(s[4], 1.0f);
    EXPECT_EQ(s[5], 0.0f);
    EXPECT_TRUE(std::isnan(s[6]));
    EXPECT_EQ(e[0], 1.0f);
    EXPECT_TRUE(std::isinf(e[4]));
    EXPECT_GT(e[5], 0.0f);  // Clamped at e^-87, not 0.
    EXPECT_TRUE(std::isnan(e[6]));
    // In place gives the same as out of place.
    float inplace[n];
    std::copy(in, in + n, inplace);
    k->tanh(inplace, inplace, n);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(inplace[i], t[i]);
  }
}

TEST(VecMathTest, BoxMullerMatchesLibm) {
  // Every 24-bit u2 step near the quadrant boundaries and a grid of u1
  // down to 2^-24 (the smallest uniform Rng::FillNormal passes).
  std::vector<float> u1, u2;
  for (int i = 0; i < 4096; ++i) {
    u2.push_back(i / 4096.0f);
    for (float q : {0.125f, 0.25f, 0.375f, 0.5f, 0.75f}) {
      u2.push_back(q + (i - 2048) * (1.0f / 16777216.0f));
    }
  }
  for (size_t i = 0; i < u2.size(); ++i) {
    u1.push_back(std::ldexp(float(i % 4096 + 1), -int(i % 13)) / 4096.0f);
  }
  u1.push_back(1.0f / 16777216.0f);
  u2.push_back(0.999999940f);
  const int64_t n = u1.size();
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    std::vector<float> c(n), s(n);
    k->box_muller(u1.data(), u2.data(), n, 0.5f, 2.0f, c.data(), s.data());
    double err = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double r = std::sqrt(-2.0 * std::log(double(u1[i])));
      const double th = 2 * M_PI * double(u2[i]);
      // Absolute error relative to r: cos/sin near zero carry no relative
      // accuracy worth asking for.
      err = std::max(err, std::abs((c[i] - 0.5) / 2.0 - r * std::cos(th)) / r);
      err = std::max(err, std::abs((s[i] - 0.5) / 2.0 - r * std::sin(th)) / r);
    }
    EXPECT_LT(err, 1e-6);
  }
}

TEST(VecMathTest, AdamMatchesScalarFormula) {
  const int64_t n = 1003;
  AdamCoefficients c{0.9f, 0.1f, 0.999f, 0.001f, 0.01f, 1.3f, 1e-8f};
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    std::vector<float> g(n), w(n), m(n), v(n);
    for (int64_t i = 0; i < n; ++i) {
      g[i] = std::sin(0.37 * i);
      w[i] = std::cos(0.11 * i);
      m[i] = 0.1f * std::sin(0.05 * i);
      v[i] = 0.01f * (1 + std::cos(0.07 * i));
    }
    std::vector<float> w2 = w, m2 = m, v2 = v;
    k->adam(c, g.data(), w2.data(), m2.data(), v2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double mi = 0.9 * m[i] + 0.1 * g[i];
      const double vi = 0.999 * v[i] + 0.001 * double(g[i]) * g[i];
      const double wi = w[i] - 0.01 * mi / (std::sqrt(vi) * 1.3 + 1e-8);
      EXPECT_NEAR(m2[i], mi, 1e-6 * (1 + std::abs(mi)));
      EXPECT_NEAR(v2[i], vi, 1e-6 * vi);
      EXPECT_NEAR(w2[i], wi, 1e-6);
    }
  }
}

// One channel of a [5, 3, 37] tensor (rows strided over the other
// channels; 37 leaves a tail after the 8-wide loops), against the batch-norm
// formulas in double.
TEST(VecMathTest, NormKernelsMatchDoubleFormulas) {
  const int64_t rows = 5, channels = 3, len = 37, c = 1;
  const NormChannel ch{rows, channels * len, len};
  std::vector<float> x(rows * channels * len), dy(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = 2.0f + 1.5f * std::sin(0.31 * i);
    dy[i] = std::cos(0.17 * i);
  }
  const float* xc = x.data() + c * len;
  const float* dyc = dy.data() + c * len;
  double mean = 0, var = 0, sum_dy = 0, sum_dy_xh = 0;
  const double m = double(rows * len);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < len; ++k) mean += xc[r * ch.stride + k] / m;
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < len; ++k) {
      const double d = xc[r * ch.stride + k] - mean;
      var += d * d / m;
    }
  }
  const float mu = float(mean), inv = float(1.0 / std::sqrt(var + 1e-5));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < len; ++k) {
      const int64_t i = r * ch.stride + k;
      sum_dy += dyc[i];
      sum_dy_xh += dyc[i] * ((xc[i] - mu) * double(inv));
    }
  }
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    double got_mean, got_var, got_sum_dy, got_sum_dy_xh;
    k->norm_stats(xc, ch, &got_mean, &got_var);
    EXPECT_NEAR(got_mean, mean, 1e-6 * std::abs(mean));
    EXPECT_NEAR(got_var, var, 1e-5 * var);
    // Only channel c is written: the other channels' values stay -1.
    std::vector<float> y(x.size(), -1.0f), dx(x.size(), -1.0f);
    k->norm_apply(xc, ch, mu, inv, 0.7f, -0.2f, y.data() + c * len);
    k->norm_grad_sums(dyc, xc, ch, mu, inv, &got_sum_dy, &got_sum_dy_xh);
    EXPECT_NEAR(got_sum_dy, sum_dy, 1e-5);
    EXPECT_NEAR(got_sum_dy_xh, sum_dy_xh, 1e-5);
    const float scale = 0.7f * inv, mean_dy = float(sum_dy / m),
                mean_dy_xh = float(sum_dy_xh / m);
    k->norm_grad_input(dyc, xc, ch, mu, inv, scale, mean_dy, mean_dy_xh,
                       dx.data() + c * len);
    for (int64_t i = 0; i < rows * channels * len; ++i) {
      if ((i / len) % channels != c) {
        EXPECT_EQ(y[i], -1.0f);
        EXPECT_EQ(dx[i], -1.0f);
        continue;
      }
      const double xhat = (x[i] - double(mu)) * inv;
      EXPECT_NEAR(y[i], 0.7 * xhat - 0.2, 1e-5);
      EXPECT_NEAR(dx[i], scale * (dy[i] - mean_dy - xhat * mean_dy_xh), 1e-5);
    }
  }
}

TEST(RngFillNormalTest, MomentsAndTails) {
  Rng rng(3);
  const int64_t n = 1 << 20;
  std::vector<float> z(n);
  rng.FillNormal(z.data(), n, 1.5f, 2.0f);
  double s = 0, s2 = 0, s4 = 0;
  int64_t within1 = 0, beyond3 = 0;
  for (float v : z) {
    const double t = (v - 1.5) / 2.0;
    s += t;
    s2 += t * t;
    s4 += t * t * t * t;
    within1 += std::abs(t) < 1;
    beyond3 += std::abs(t) > 3;
  }
  // Standard errors at n = 2^20: mean 1e-3, variance 1.4e-3, fourth
  // moment 9.4e-3, P(|t| < 1) 4.6e-4, P(|t| > 3) 5.1e-5.
  EXPECT_NEAR(s / n, 0.0, 5e-3);
  EXPECT_NEAR(s2 / n, 1.0, 7e-3);
  EXPECT_NEAR(s4 / n, 3.0, 5e-2);
  EXPECT_NEAR(double(within1) / n, 0.682689, 2.5e-3);
  EXPECT_NEAR(double(beyond3) / n, 0.0026998, 3e-4);
}

TEST(RngFillNormalTest, SeedFixesStreamAndStateResumes) {
  // An odd length leaves one sine unused; the next fill starts afresh.
  Rng a(11), b(11), c(12);
  std::vector<float> za(1001), zb(1001), zc(1001);
  a.FillNormal(za.data(), 1001);
  b.FillNormal(zb.data(), 1001);
  c.FillNormal(zc.data(), 1001);
  EXPECT_EQ(za, zb);
  EXPECT_NE(za, zc);
  const std::string saved = a.Save();
  std::vector<float> next_a(77), next_r(77);
  a.FillNormal(next_a.data(), 77);
  Rng r;
  ASSERT_TRUE(r.Restore(saved).ok());
  r.FillNormal(next_r.data(), 77);
  EXPECT_EQ(next_a, next_r);
  // ceil(1001 / 2) engine draws were used: b continues where a stopped.
  Rng d(11);
  for (int i = 0; i < 501; ++i) d.Next();
  EXPECT_EQ(d.Next(), b.Next());
  // A fill of 2k values is the pairs of k draws: cosines, then sines.
  Rng e(5), f(5);
  std::vector<float> pair(2);
  e.FillNormal(pair.data(), 2);
  const uint64_t w = f.Next();
  const double u1 = ((w >> 40) + 1) / 16777216.0;
  const double u2 = ((w >> 16) & 0xffffff) / 16777216.0;
  const double r2 = std::sqrt(-2 * std::log(u1));
  EXPECT_NEAR(pair[0], r2 * std::cos(2 * M_PI * u2), 1e-5);
  EXPECT_NEAR(pair[1], r2 * std::sin(2 * M_PI * u2), 1e-5);
}

// Every path finds an infinity or NaN wherever it sits (each lane, the
// tail, past the first 1024-value block) and passes the largest finite
// values and denormals.
TEST(VecMathTest, AllFiniteFindsEveryNonFiniteValue) {
  const float bad[] = {INFINITY, -INFINITY, NAN, -NAN};
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    for (int64_t n : {0, 1, 7, 8, 9, 16, 31, 33, 1023, 1024, 1025, 2100}) {
      std::vector<float> x(n);
      for (int64_t i = 0; i < n; ++i) {
        x[i] = i % 3 == 0 ? 3.4028235e38f : (i % 3 == 1 ? -1e-45f : 0.5f);
      }
      ASSERT_TRUE(k->all_finite(x.data(), n)) << "n " << n;
      for (int64_t at = 0; at < n; ++at) {
        const float saved = x[at];
        x[at] = bad[at % 4];
        ASSERT_FALSE(k->all_finite(x.data(), n)) << "n " << n << " at " << at;
        x[at] = saved;
      }
    }
  }
}

// The squared norm and distance against sums in long double, for lengths
// around the vector widths and a parameter-sized tensor.
TEST(VecMathTest, SquaredNormAndDistanceMatchLongDoubleSums) {
  Rng rng(31);
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    for (int64_t n : {0, 1, 5, 15, 16, 17, 33, 78500}) {
      std::vector<float> x(n), y(n);
      rng.FillNormal(x.data(), n);
      rng.FillNormal(y.data(), n);
      long double norm = 0, dist = 0;
      for (int64_t i = 0; i < n; ++i) {
        norm += static_cast<long double>(x[i]) * x[i];
        const long double d = static_cast<long double>(x[i]) - y[i];
        dist += d * d;
      }
      EXPECT_LE(std::abs(k->squared_norm(x.data(), n) - double(norm)),
                1e-13 * double(norm))
          << "n " << n;
      EXPECT_LE(
          std::abs(k->squared_distance(x.data(), y.data(), n) - double(dist)),
          1e-13 * double(dist))
          << "n " << n;
    }
  }
}

// Every byte maps to its correctly rounded quotient by 255 on every path,
// in every lane and in the tail. (The quotient in double, rounded to
// float, is that: b / 255 is never near a float rounding boundary.)
TEST(VecMathTest, BytesToUnitIsTheExactQuotient) {
  std::vector<uint8_t> in(256 * 3 + 5);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7);
  for (const VecKernels* k : Paths()) {
    SCOPED_TRACE(k->name);
    std::vector<float> out(in.size(), -1.0f);
    k->bytes_to_unit(in.data(), out.data(), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      ASSERT_EQ(out[i], static_cast<float>(in[i] / 255.0)) << "byte " << +in[i];
    }
    EXPECT_EQ(out[73], 1.0f);  // 73 * 7 = 511: byte 255.
  }
}

}  // namespace
}  // namespace nnlab

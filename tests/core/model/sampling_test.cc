// Sampling from scores: top-k order and ties, the temperature-0 argmax,
// draws that follow softmax(scores / temperature), and one-to-many
// sequence sampling fed back one-hot.
#include "core/model/sampling.h"

#include <cmath>
#include <vector>

#include "core/model/model.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

TEST(TopKTest, LargestFirstTiesToLowerIndex) {
  const std::vector<float> s = {0.1f, 0.4f, 0.2f, 0.4f, -1.0f};
  EXPECT_EQ(TopK(s.data(), 5, 3), (std::vector<int64_t>{1, 3, 2}));
  EXPECT_EQ(TopK(s.data(), 5, 1), (std::vector<int64_t>{1}));
  EXPECT_EQ(TopK(s.data(), 5, 0), (std::vector<int64_t>{}));
  // k beyond the row: every index, in order.
  EXPECT_EQ(TopK(s.data(), 5, 9), (std::vector<int64_t>{1, 3, 2, 0, 4}));
}

TEST(SampleIndexTest, TemperatureZeroIsArgmaxAndDrawsNothing) {
  const std::vector<float> s = {0.5f, 2.0f, 2.0f, -3.0f};
  Rng rng(3), untouched(3);
  EXPECT_EQ(SampleIndex(s.data(), 4, 0.0, &rng), 1);
  EXPECT_EQ(rng.Uniform(), untouched.Uniform());
}

TEST(SampleIndexTest, DrawsFollowTheSoftmax) {
  // softmax(log p / 1) = p; at temperature 0.5 the weights are p^2.
  const std::vector<float> s = {std::log(0.1f), std::log(0.3f), std::log(0.6f)};
  Rng rng(11);
  const int kDraws = 60000;
  std::vector<int> counts(3, 0), sharp(3, 0);
  for (int i = 0; i < kDraws; ++i)
    ++counts[SampleIndex(s.data(), 3, 1.0, &rng)];
  for (int i = 0; i < kDraws; ++i) ++sharp[SampleIndex(s.data(), 3, 0.5, &rng)];
  const double p[3] = {0.1, 0.3, 0.6};
  const double p2[3] = {0.01 / 0.46, 0.09 / 0.46, 0.36 / 0.46};
  for (int j = 0; j < 3; ++j) {
    // Binomial standard deviation is below 0.002 here; allow ~4 of them.
    EXPECT_NEAR(counts[j] / double(kDraws), p[j], 0.008) << j;
    EXPECT_NEAR(sharp[j] / double(kDraws), p2[j], 0.008) << j;
  }
}

TEST(SampleIndexTest, HugeScoresDoNotOverflow) {
  const std::vector<float> s = {1e30f, 1e30f - 1e24f, -1e30f};
  Rng rng(5);
  for (int i = 0; i < 100; ++i) {
    const int64_t k = SampleIndex(s.data(), 3, 1.0, &rng);
    EXPECT_TRUE(k == 0 || k == 1) << k;
  }
}

std::unique_ptr<Model> SequenceModel(int64_t f, int64_t out) {
  ModelSpec spec;
  spec.input_shape = {3, f};
  spec.loss = LossKind::kMse;
  spec.init = InitKind::kGlorot;
  spec.layers.resize(2);
  spec.layers[0].kind = "rnn";
  spec.layers[0].units = 6;
  spec.layers[0].return_sequences = true;
  spec.layers[1].kind = "time_dense";
  spec.layers[1].units = out;
  auto model = Model::Build(spec);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(*model);
}

TEST(SampleSequenceTest, ArgmaxPicksAreFedBackOneHot) {
  const int64_t n = 2, f = 4, steps = 5;
  std::unique_ptr<Model> model = SequenceModel(f, f);
  Tensor prime({n, 1, f});
  prime[0 * f + 1] = 1.0f;
  prime[1 * f + 3] = 1.0f;
  Rng rng(1);
  std::vector<int64_t> tokens;
  Tensor samples;
  ASSERT_TRUE(
      SampleSequence(model.get(), prime, steps, 0.0, &rng, &tokens, &samples)
          .ok());
  ASSERT_EQ(tokens.size(), size_t(n * steps));
  ASSERT_EQ(samples.shape(), (Shape{n, steps, f}));
  // Each row replayed whole (stateless): the pick at step s is the argmax
  // of the output after the prime and picks 0..s-1, and samples one-hot
  // encodes it.
  for (int64_t r = 0; r < n; ++r) {
    Tensor whole({1, steps, f});
    for (int64_t j = 0; j < f; ++j) whole[j] = prime[r * f + j];
    for (int64_t s = 0; s + 1 < steps; ++s) {
      whole[(s + 1) * f + tokens[r * steps + s]] = 1.0f;
    }
    const Tensor& out = model->layers().Forward(whole, Mode::kEval);
    for (int64_t s = 0; s < steps; ++s) {
      const float* z = out.data() + s * f;
      EXPECT_EQ(tokens[r * steps + s], TopK(z, f, 1)[0]) << r << " " << s;
      for (int64_t j = 0; j < f; ++j) {
        EXPECT_EQ(samples[(r * steps + s) * f + j],
                  j == tokens[r * steps + s] ? 1.0f : 0.0f);
      }
    }
  }
}

TEST(SampleSequenceTest, SameSeedSameDrawsAndOutputWidthChecked) {
  const int64_t f = 4;
  std::unique_ptr<Model> model = SequenceModel(f, f);
  Tensor prime({3, 1, f});
  std::vector<int64_t> a, b;
  Tensor sa, sb;
  Rng r1(42), r2(42);
  ASSERT_TRUE(SampleSequence(model.get(), prime, 6, 2.0, &r1, &a, &sa).ok());
  ASSERT_TRUE(SampleSequence(model.get(), prime, 6, 2.0, &r2, &b, &sb).ok());
  EXPECT_EQ(a, b);
  for (int64_t t : a) EXPECT_TRUE(t >= 0 && t < f) << t;

  std::unique_ptr<Model> narrow = SequenceModel(f, 2);
  std::vector<int64_t> tokens;
  Tensor samples;
  Rng rng(1);
  absl::Status s =
      SampleSequence(narrow.get(), prime, 2, 0.0, &rng, &tokens, &samples);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("outputs 2 values per step"), std::string::npos)
      << s;
}

}  // namespace
}  // namespace nnlab

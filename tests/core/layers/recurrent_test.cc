// Recurrent layers: finite-difference checks through time (full and
// truncated BPTT, all parameters and the input), per-timestep gradient
// norms, stateful stepping, hand-computed forward passes, clipping, the
// sequence loss and data sources, and bad input (with the GAN's).
#include "core/layers/recurrent.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/data/sequence_data.h"
#include "core/kernels/blas.h"
#include "core/layers/layer.h"
#include "core/model/model.h"
#include "core/model/sequence_model.h"
#include "core/optim/optimizer.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"

namespace nnlab {
namespace {

using testing_util::CheckLayerGradients;
using testing_util::FillNormal;
using testing_util::RelError;

std::unique_ptr<RecurrentLayer> MakeRecurrent(const std::string& kind,
                                              int64_t units, bool sequences,
                                              int64_t window, const Shape& in,
                                              uint64_t seed = 7) {
  LayerSpec spec;
  spec.kind = kind;
  spec.units = units;
  spec.return_sequences = sequences;
  spec.bptt_window = window;
  Rng rng(seed);
  Shape out;
  auto layer = MakeLayer(spec, kind + "0", in, InitKind::kGlorot, &rng, &out);
  EXPECT_TRUE(layer.ok()) << layer.status();
  std::unique_ptr<Layer> l = std::move(layer).value();
  // Randomise every parameter (biases too) so no derivative is trivially 0.
  Rng prng(seed + 1);
  for (const Param& p : l->Params()) FillNormal(p.value, &prng, 0.5f);
  auto* r = dynamic_cast<RecurrentLayer*>(l.release());
  EXPECT_NE(r, nullptr);
  return std::unique_ptr<RecurrentLayer>(r);
}

// Steps [begin, begin + len) of x [N, T, F].
Tensor Slice(const Tensor& x, int64_t begin, int64_t len) {
  const int64_t n = x.dim(0), t = x.dim(1), f = x.dim(2);
  Tensor out({n, len, f});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t s = 0; s < len * f; ++s) {
      out[i * len * f + s] = x[(i * t + begin) * f + s];
    }
  }
  return out;
}

class RecurrentTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecurrentTest, FullBpttMatchesFiniteDifferences) {
  for (bool sequences : {true, false}) {
    SCOPED_TRACE(sequences ? "many-to-many" : "many-to-one");
    auto layer = MakeRecurrent(GetParam(), 4, sequences, 0, {5, 3});
    Rng rng(3);
    Tensor x({2, 5, 3});
    FillNormal(&x, &rng);
    CheckLayerGradients(layer.get(), &x);
  }
}

// Truncated BPTT with window k is the exact gradient of the sequence cut
// into windows whose entering state is a constant: each window is replayed
// from its frozen state by a stateful full-BPTT layer with the same weights.
void CheckTruncated(const std::string& kind, bool sequences) {
  const int64_t n = 2, t = 5, f = 3, h = 4, k = 2;
  auto trunc = MakeRecurrent(kind, h, sequences, k, {t, f});
  auto ref = MakeRecurrent(kind, h, /*sequences=*/true, 0, {t, f});
  Rng rng(5);
  Tensor x({n, t, f});
  FillNormal(&x, &rng);
  Tensor out, gx;
  trunc->Forward(x, &out, Mode::kTrain);
  Tensor r(out.shape());
  FillNormal(&r, &rng);
  trunc->Backward(r, &gx);

  // States entering each window, from an unperturbed pass.
  ref->set_stateful(true);
  ref->ResetState();
  std::vector<std::vector<Tensor>> entering;
  Tensor chunk, cout;
  for (int64_t b = 0; b < t; b += k) {
    std::vector<Tensor> states;
    for (Tensor* s : ref->State()) {
      states.push_back(s->rank() == 2 ? s->Clone() : Tensor({n, h}));
    }
    entering.push_back(std::move(states));
    chunk = Slice(x, b, std::min(k, t - b));
    ref->Forward(chunk, &cout, Mode::kTrain);
  }
  auto energy = [&]() {
    double e = 0;
    for (int64_t c = 0, b = 0; b < t; ++c, b += k) {
      const int64_t len = std::min(k, t - b);
      std::vector<Tensor*> st = ref->State();
      for (size_t q = 0; q < st.size(); ++q) st[q]->CopyFrom(entering[c][q]);
      chunk = Slice(x, b, len);
      ref->Forward(chunk, &cout, Mode::kTrain);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t s = 0; s < len; ++s) {
          for (int64_t j = 0; j < h; ++j) {
            const float o = cout[(i * len + s) * h + j];
            if (sequences) {
              e += double(o) * r[(i * t + b + s) * h + j];
            } else if (b + s == t - 1) {
              e += double(o) * r[i * h + j];
            }
          }
        }
      }
    }
    return e;
  };
  const float step = 1e-2f;
  auto numeric = [&](float* v) {
    const float saved = *v;
    *v = saved + step;
    const double plus = energy();
    *v = saved - step;
    const double minus = energy();
    *v = saved;
    return (plus - minus) / (2.0 * step);
  };
  for (int64_t i = 0; i < x.size(); ++i) {
    const double num = numeric(&x[i]);
    EXPECT_LT(RelError(gx[i], num), 2e-2)
        << "input[" << i << "] analytic " << gx[i] << " numeric " << num;
  }
  std::vector<Param> tp = trunc->Params(), rp = ref->Params();
  ASSERT_EQ(tp.size(), rp.size());
  for (size_t q = 0; q < tp.size(); ++q) {
    for (int64_t i = 0; i < rp[q].value->size(); ++i) {
      ASSERT_EQ((*tp[q].value)[i], (*rp[q].value)[i]);
      const double num = numeric(&(*rp[q].value)[i]);
      EXPECT_LT(RelError((*tp[q].grad)[i], num), 2e-2)
          << tp[q].name << "[" << i << "] analytic " << (*tp[q].grad)[i]
          << " numeric " << num;
    }
  }

  // And truncation really cuts: the full gradient differs.
  auto full = MakeRecurrent(kind, h, sequences, 0, {t, f});
  full->Forward(x, &out, Mode::kTrain);
  full->Backward(r, &gx);
  double diff = 0;
  for (size_t q = 0; q < tp.size(); ++q) {
    const Tensor& a = *tp[q].grad;
    const Tensor& b = *full->Params()[q].grad;
    for (int64_t i = 0; i < a.size(); ++i) {
      diff = std::max(diff, double(std::abs(a[i] - b[i])));
    }
  }
  EXPECT_GT(diff, 1e-3);
}

TEST_P(RecurrentTest, TruncatedBpttMatchesFiniteDifferencesOfCutSequence) {
  for (bool sequences : {true, false}) {
    SCOPED_TRACE(sequences ? "many-to-many" : "many-to-one");
    CheckTruncated(GetParam(), sequences);
  }
}

TEST_P(RecurrentTest, WindowAsLongAsSequenceIsFullBptt) {
  auto a = MakeRecurrent(GetParam(), 3, true, 0, {4, 2});
  auto b = MakeRecurrent(GetParam(), 3, true, 4, {4, 2});
  Rng rng(9);
  Tensor x({3, 4, 2}), out, ga, gb;
  FillNormal(&x, &rng);
  a->Forward(x, &out, Mode::kTrain);
  Tensor r(out.shape());
  FillNormal(&r, &rng);
  a->Backward(r, &ga);
  b->Forward(x, &out, Mode::kTrain);
  b->Backward(r, &gb);
  for (int64_t i = 0; i < ga.size(); ++i) EXPECT_EQ(ga[i], gb[i]);
  for (size_t q = 0; q < a->Params().size(); ++q) {
    const Tensor& pa = *a->Params()[q].grad;
    const Tensor& pb = *b->Params()[q].grad;
    for (int64_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i], pb[i]);
  }
  EXPECT_EQ(a->timestep_grad_norms(), b->timestep_grad_norms());
}

// ||dE/dh_s|| against finite differences on the state: replay steps > s
// from a perturbed h_s (the cell state held fixed) with a stateful layer.
TEST_P(RecurrentTest, TimestepGradNormsMatchFiniteDifferences) {
  const int64_t n = 2, t = 4, f = 3, h = 3;
  for (bool sequences : {true, false}) {
    SCOPED_TRACE(sequences ? "many-to-many" : "many-to-one");
    auto layer = MakeRecurrent(GetParam(), h, sequences, 0, {t, f});
    auto ref = MakeRecurrent(GetParam(), h, true, 0, {t, f});
    Rng rng(11);
    Tensor x({n, t, f}), out, gx;
    FillNormal(&x, &rng);
    layer->Forward(x, &out, Mode::kTrain);
    Tensor r(out.shape());
    FillNormal(&r, &rng);
    layer->Backward(r, &gx);
    const std::vector<double>& norms = layer->timestep_grad_norms();
    ASSERT_EQ(norms.size(), size_t(t));
    ref->set_stateful(true);
    for (int64_t s = 0; s < t; ++s) {
      // State after step s.
      ref->ResetState();
      Tensor head = Slice(x, 0, s + 1), tail, cout;
      ref->Forward(head, &cout, Mode::kTrain);
      std::vector<Tensor> state;
      for (Tensor* st : ref->State()) state.push_back(st->Clone());
      // Direct term: the output at s is h_s itself.
      Tensor g({n, h});
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < h; ++j) {
          if (sequences) {
            g[i * h + j] = r[(i * t + s) * h + j];
          } else if (s == t - 1) {
            g[i * h + j] = r[i * h + j];
          }
        }
      }
      if (s + 1 < t) {
        tail = Slice(x, s + 1, t - s - 1);
        auto energy = [&]() {
          std::vector<Tensor*> st = ref->State();
          for (size_t q = 0; q < st.size(); ++q) st[q]->CopyFrom(state[q]);
          ref->Forward(tail, &cout, Mode::kTrain);
          const int64_t len = t - s - 1;
          double e = 0;
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t u = 0; u < len; ++u) {
              for (int64_t j = 0; j < h; ++j) {
                const float o = cout[(i * len + u) * h + j];
                if (sequences) {
                  e += double(o) * r[(i * t + s + 1 + u) * h + j];
                } else if (u == len - 1) {
                  e += double(o) * r[i * h + j];
                }
              }
            }
          }
          return e;
        };
        for (int64_t k = 0; k < n * h; ++k) {
          float& v = state[0][k];
          const float saved = v;
          v = saved + 1e-2f;
          const double plus = energy();
          v = saved - 1e-2f;
          const double minus = energy();
          v = saved;
          g[k] += static_cast<float>((plus - minus) / 2e-2);
        }
      }
      EXPECT_LT(RelError(norms[s], g.Norm()), 1e-2)
          << "step " << s << ": layer " << norms[s] << " numeric " << g.Norm();
    }
  }
}

TEST_P(RecurrentTest, StatefulStepsReproduceTheWholeSequence) {
  auto layer = MakeRecurrent(GetParam(), 5, true, 0, {6, 3});
  Rng rng(13);
  Tensor x({2, 6, 3}), full, step;
  FillNormal(&x, &rng);
  layer->Forward(x, &full, Mode::kEval);
  layer->set_stateful(true);
  layer->ResetState();
  for (int64_t s = 0; s < 6; ++s) {
    Tensor xs = Slice(x, s, 1);
    layer->Forward(xs, &step, Mode::kEval);
    for (int64_t i = 0; i < 2; ++i) {
      for (int64_t j = 0; j < 5; ++j) {
        EXPECT_NEAR(step[i * 5 + j], full[(i * 6 + s) * 5 + j], 1e-6);
      }
    }
  }
  // Stateless again: starts from zeros, so repeats the first step.
  layer->set_stateful(false);
  Tensor x0 = Slice(x, 0, 1);
  layer->Forward(x0, &step, Mode::kEval);
  EXPECT_NEAR(step[0], full[0], 1e-6);
}

// On 2 threads the recurrence runs in two slices of the batch at once
// (RecurrentLayer::BatchParts); everything it computes matches the whole
// batch on 1 thread: outputs, dE/dx, weight gradients and the per-step
// gradient norms, with full and truncated BPTT, many-to-many and
// many-to-one. The 1-thread path is the one the finite-difference tests
// above check.
TEST_P(RecurrentTest, BatchSlicesOnTwoThreadsMatchOneThread) {
  const int saved = BlasThreads();
  // 51 sequences split 25 + 26; 24 steps x 51 x 64 x 64 (x 4 gates) is
  // over the 4 M multiply-adds from which the batch is split.
  const int64_t n = 51, t = 24, f = 5, h = 64;
  Rng rng(23);
  Tensor x({n, t, f});
  FillNormal(&x, &rng);
  for (bool sequences : {true, false}) {
    for (int64_t window : {0, 5}) {
      SCOPED_TRACE(testing::Message()
                   << (sequences ? "many-to-many" : "many-to-one")
                   << ", window " << window);
      struct Run {
        Tensor out, gx;
        std::vector<Tensor> grads;
        std::vector<double> norms;
      };
      auto run = [&](int threads) {
        SetBlasThreads(threads);
        auto layer = MakeRecurrent(GetParam(), h, sequences, window, {t, f});
        EXPECT_EQ(layer->BatchParts(n, t), threads);
        Run r;
        layer->Forward(x, &r.out, Mode::kTrain);
        Tensor dy(r.out.shape());
        Rng dy_rng(29);
        FillNormal(&dy, &dy_rng);
        layer->Backward(dy, &r.gx);
        for (const Param& p : layer->Params())
          r.grads.push_back(p.grad->Clone());
        r.norms = layer->timestep_grad_norms();
        return r;
      };
      const Run one = run(1), two = run(2);
      auto expect_near = [](const Tensor& a, const Tensor& b,
                            const char* what) {
        ASSERT_EQ(a.shape(), b.shape()) << what;
        for (int64_t i = 0; i < a.size(); ++i) {
          ASSERT_NEAR(a[i], b[i], 1e-5f * (1.0f + std::fabs(a[i])))
              << what << " element " << i;
        }
      };
      expect_near(one.out, two.out, "output");
      expect_near(one.gx, two.gx, "dE/dx");
      ASSERT_EQ(one.grads.size(), two.grads.size());
      for (size_t k = 0; k < one.grads.size(); ++k) {
        expect_near(one.grads[k], two.grads[k], "weight gradient");
      }
      ASSERT_EQ(one.norms.size(), two.norms.size());
      for (size_t s = 0; s < one.norms.size(); ++s) {
        EXPECT_LT(RelError(one.norms[s], two.norms[s]), 1e-6) << "step " << s;
      }
    }
  }
  SetBlasThreads(saved);
}

INSTANTIATE_TEST_SUITE_P(Kinds, RecurrentTest,
                         ::testing::Values("rnn", "lstm"));

TEST(RnnTest, HandComputedForward) {
  auto layer = MakeRecurrent("rnn", 1, true, 0, {2, 1});
  std::vector<Param> p = layer->Params();  // weight_ih, weight_hh, bias.
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].name, "rnn0.weight_ih");
  EXPECT_EQ(p[1].name, "rnn0.weight_hh");
  EXPECT_EQ(p[2].name, "rnn0.bias");
  (*p[0].value)[0] = 0.5f;
  (*p[1].value)[0] = -0.3f;
  (*p[2].value)[0] = 0.1f;
  Tensor x({1, 2, 1}), out;
  x[0] = 1.0f;
  x[1] = 2.0f;
  layer->Forward(x, &out, Mode::kEval);
  const double h0 = std::tanh(0.5 * 1 + 0.1);             // 0.53705
  const double h1 = std::tanh(0.5 * 2 - 0.3 * h0 + 0.1);  // tanh(0.93888)
  EXPECT_NEAR(out[0], 0.5370496, 1e-6);
  EXPECT_NEAR(out[0], h0, 1e-6);
  EXPECT_NEAR(out[1], h1, 1e-6);
}

TEST(LstmTest, HandComputedStepAndForgetBiasInit) {
  LayerSpec spec;
  spec.kind = "lstm";
  spec.units = 2;
  Rng rng(1);
  Shape out_shape;
  auto made =
      MakeLayer(spec, "lstm0", {3, 4}, InitKind::kGlorot, &rng, &out_shape);
  ASSERT_TRUE(made.ok()) << made.status();
  std::vector<Param> p = (*made)->Params();
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].value->shape(), (Shape{8, 4}));
  EXPECT_EQ(p[1].value->shape(), (Shape{8, 2}));
  EXPECT_EQ(p[2].value->shape(), (Shape{8}));
  EXPECT_EQ(out_shape, (Shape{2}));
  // Bias blocks f, i, g, o: forget gate starts at 1, the rest at 0.
  for (int j = 0; j < 8; ++j) EXPECT_EQ((*p[2].value)[j], j < 2 ? 1.0f : 0.0f);

  // One unit, one feature, two steps, gates in the order f, i, g, o.
  auto layer = MakeRecurrent("lstm", 1, true, 0, {2, 1});
  std::vector<Param> q = layer->Params();
  const float wx[4] = {0.2f, -0.4f, 0.7f, 0.3f};
  const float wh[4] = {0.1f, 0.5f, -0.6f, 0.2f};
  const float b[4] = {1.0f, 0.1f, -0.2f, 0.05f};
  for (int g = 0; g < 4; ++g) {
    (*q[0].value)[g] = wx[g];
    (*q[1].value)[g] = wh[g];
    (*q[2].value)[g] = b[g];
  }
  Tensor x({1, 2, 1}), out;
  x[0] = 1.5f;
  x[1] = -0.5f;
  layer->Forward(x, &out, Mode::kEval);
  auto sig = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  double h = 0, c = 0;
  double expect[2];
  for (int s = 0; s < 2; ++s) {
    const double xs = x[s];
    const double f = sig(wx[0] * xs + wh[0] * h + b[0]);
    const double i = sig(wx[1] * xs + wh[1] * h + b[1]);
    const double cc = std::tanh(wx[2] * xs + wh[2] * h + b[2]);
    const double o = sig(wx[3] * xs + wh[3] * h + b[3]);
    c = f * c + i * cc;
    h = o * std::tanh(c);
    expect[s] = h;
  }
  EXPECT_NEAR(out[0], expect[0], 1e-6);
  EXPECT_NEAR(out[1], expect[1], 1e-6);
  // First step by hand: f irrelevant (c_-1 = 0), i = sig(-0.5),
  // C~ = tanh(0.85), o = sig(0.5).
  EXPECT_NEAR(out[0], sig(0.5) * std::tanh(sig(-0.5) * std::tanh(0.85)), 1e-6);
}

TEST(TimeDenseTest, MatchesFiniteDifferences) {
  LayerSpec spec;
  spec.kind = "time_dense";
  spec.units = 3;
  Rng rng(2);
  Shape out_shape;
  auto layer = MakeLayer(spec, "time_dense0", {4, 5}, InitKind::kGlorot, &rng,
                         &out_shape);
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(out_shape, (Shape{4, 3}));
  for (const Param& p : (*layer)->Params()) FillNormal(p.value, &rng, 0.5f);
  Tensor x({2, 4, 5});
  FillNormal(&x, &rng);
  CheckLayerGradients(layer->get(), &x);
}

// A stack of two recurrent layers and a per-step head, checked end to end.
TEST(StackTest, StackedRecurrentLayersMatchFiniteDifferences) {
  std::vector<LayerSpec> specs(3);
  specs[0].kind = "lstm";
  specs[0].units = 3;
  specs[0].return_sequences = true;
  specs[1].kind = "rnn";
  specs[1].units = 3;
  specs[1].return_sequences = true;
  specs[2].kind = "time_dense";
  specs[2].units = 2;
  Rng rng(4);
  auto stack_or = LayerStack::Build(specs, {4, 2}, InitKind::kGlorot, &rng, "");
  ASSERT_TRUE(stack_or.ok()) << stack_or.status();
  LayerStack stack = std::move(stack_or).value();
  for (const Param& p : stack.Params()) FillNormal(p.value, &rng, 0.5f);
  Tensor x({2, 4, 2});
  FillNormal(&x, &rng);
  const Tensor& out0 = stack.Forward(x, Mode::kTrain);
  ASSERT_EQ(out0.shape(), (Shape{2, 4, 2}));
  Tensor r(out0.shape());
  FillNormal(&r, &rng);
  Tensor gx;
  stack.Backward(r, &gx);
  auto energy = [&]() {
    const Tensor& out = stack.Forward(x, Mode::kTrain);
    double e = 0;
    for (int64_t i = 0; i < out.size(); ++i) e += double(out[i]) * r[i];
    return e;
  };
  auto numeric = [&](float* v) {
    const float saved = *v;
    *v = saved + 1e-2f;
    const double plus = energy();
    *v = saved - 1e-2f;
    const double minus = energy();
    *v = saved;
    return (plus - minus) / 2e-2;
  };
  for (int64_t i = 0; i < x.size(); ++i) {
    EXPECT_LT(RelError(gx[i], numeric(&x[i])), 2e-2) << "input " << i;
  }
  for (const Param& p : stack.Params()) {
    for (int64_t i = 0; i < p.value->size(); ++i) {
      const double num = numeric(&(*p.value)[i]);
      EXPECT_LT(RelError((*p.grad)[i], num), 2e-2)
          << p.name << "[" << i << "] analytic " << (*p.grad)[i] << " numeric "
          << num;
    }
  }
}

TEST(ClippingTest, ClipBoundsTheGlobalNormOfRecurrentGradientsExactly) {
  ModelSpec spec;
  spec.input_shape = {20, 3};
  spec.init = InitKind::kNormal;  // Large weights: large gradients.
  spec.loss = LossKind::kMse;
  spec.layers.resize(2);
  spec.layers[0].kind = "rnn";
  spec.layers[0].units = 16;
  spec.layers[1].kind = "dense";
  spec.layers[1].units = 1;
  auto model = Model::Build(spec);
  ASSERT_TRUE(model.ok()) << model.status();
  Rng rng(6);
  Tensor x({8, 20, 3}), y({8, 1}), grad;
  FillNormal(&x, &rng);
  FillNormal(&y, &rng, 10.0f);
  (*model)->ZeroGrad();
  const Tensor& out = (*model)->Forward(x, Mode::kTrain);
  (*model)->loss()->Compute(out, y, &grad);
  (*model)->Backward(grad);
  std::vector<Param> params = (*model)->Params();
  std::vector<Tensor> before;
  for (const Param& p : params) before.push_back(p.grad->Clone());
  const double norm = GlobalGradNorm(params);
  ASSERT_GT(norm, 1.0);
  EXPECT_DOUBLE_EQ(ClipGradNorm(params, 1.0f), norm);
  EXPECT_NEAR(GlobalGradNorm(params), 1.0, 1e-6);
  // Direction kept: every gradient scaled by the same 1/norm.
  for (size_t q = 0; q < params.size(); ++q) {
    for (int64_t i = 0; i < before[q].size(); ++i) {
      EXPECT_NEAR((*params[q].grad)[i], before[q][i] / norm,
                  1e-6 * (1 + std::abs(before[q][i])));
    }
  }
  // Below the bound nothing changes.
  EXPECT_NEAR(ClipGradNorm(params, 2.0f), 1.0, 1e-6);
  EXPECT_NEAR(GlobalGradNorm(params), 1.0, 1e-6);
}

TEST(SequenceLossTest, ValueAndGradient) {
  SequenceSoftmaxCrossEntropy loss;
  // N = 1, T = 2, C = 2: logits (0, ln 3) -> p = (1/4, 3/4); (0, 0) -> 1/2.
  Tensor z({1, 2, 2}), y({1, 2}), g;
  z[1] = std::log(3.0f);
  y[0] = 1;
  y[1] = 0;
  ASSERT_TRUE(loss.ValidateTarget(z.shape(), y).ok());
  const double expect = (-std::log(0.75) - std::log(0.5)) / 2;
  EXPECT_NEAR(loss.Compute(z, y, &g), expect, 1e-6);
  EXPECT_NEAR(g[0], 0.25 / 2, 1e-6);
  EXPECT_NEAR(g[1], (0.75 - 1) / 2, 1e-6);
  EXPECT_NEAR(g[2], (0.5 - 1) / 2, 1e-6);
  EXPECT_NEAR(g[3], 0.5 / 2, 1e-6);
  EXPECT_EQ(loss.CountCorrect(z, y), 2);  // Step 1 ties; argmax picks 0.
  y[1] = 2;
  EXPECT_EQ(loss.ValidateTarget(z.shape(), y).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor wrong({1, 3});
  EXPECT_EQ(loss.ValidateTarget(z.shape(), wrong).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SequenceDataTest, AddingProblemTargetsAreTheMarkedSum) {
  auto task = AddingProblem::Create(10);
  ASSERT_TRUE(task.ok());
  Rng rng(1);
  Tensor x, y;
  (*task)->Sample(500, &rng, &x, &y);
  ASSERT_EQ(x.shape(), (Shape{500, 10, 2}));
  ASSERT_EQ(y.shape(), (Shape{500, 1}));
  double mean = 0, var = 0;
  for (int64_t i = 0; i < 500; ++i) {
    int marks_first = 0, marks_second = 0;
    double sum = 0;
    for (int64_t s = 0; s < 10; ++s) {
      if (x[(i * 10 + s) * 2 + 1] == 1.0f) {
        (s < 5 ? marks_first : marks_second)++;
        sum += x[(i * 10 + s) * 2];
      }
    }
    EXPECT_EQ(marks_first, 1);
    EXPECT_EQ(marks_second, 1);
    EXPECT_NEAR(y[i], sum, 1e-6);
    mean += y[i];
  }
  mean /= 500;
  for (int64_t i = 0; i < 500; ++i) var += (y[i] - mean) * (y[i] - mean);
  var /= 500;
  EXPECT_NEAR(mean, 1.0, 0.06);
  EXPECT_NEAR(var, 1.0 / 6, 0.03);  // The MSE of predicting the mean.
  EXPECT_FALSE(AddingProblem::Create(1).ok());
}

TEST(SequenceDataTest, CopyTaskRepeatsTheSymbolsAfterTheDelimiter) {
  auto task = CopyTask::Create(8, 3, 5);
  ASSERT_TRUE(task.ok());
  const int64_t len = 11, v = 10;
  EXPECT_EQ((*task)->sample_shape(), (Shape{len, v}));
  EXPECT_EQ((*task)->num_classes(), 10);
  EXPECT_NEAR((*task)->MemorylessCrossEntropy(), 3 * std::log(8.0) / 11, 1e-12);
  Rng rng(2);
  Tensor x, y;
  (*task)->Sample(4, &rng, &x, &y);
  for (int64_t i = 0; i < 4; ++i) {
    auto in_class = [&](int64_t s) {
      for (int64_t c = 0; c < v; ++c) {
        if (x[(i * len + s) * v + c] == 1.0f) return c;
      }
      return int64_t{-1};
    };
    for (int64_t s = 0; s < 3; ++s) {
      EXPECT_GE(in_class(s), 1);
      EXPECT_LE(in_class(s), 8);
      EXPECT_EQ(y[i * len + 8 + s], in_class(s));  // Copied after the delay.
    }
    for (int64_t s = 3; s < 7; ++s) EXPECT_EQ(in_class(s), 0);
    EXPECT_EQ(in_class(7), 9);  // Delimiter.
    for (int64_t s = 0; s < 8; ++s) EXPECT_EQ(y[i * len + s], 0.0f);
  }
}

TEST(SequenceDataTest, CharCorpusWindowsAndUnigramBaseline) {
  auto corpus = CharCorpus::FromText("abcabcabca");
  ASSERT_TRUE(corpus.ok());
  EXPECT_EQ(corpus->vocab_size(), 3);
  EXPECT_EQ(corpus->Index('b'), 1);
  EXPECT_EQ(corpus->Index('z'), -1);
  auto windows = corpus->Windows(0, 10, 4, 3);
  ASSERT_TRUE(windows.ok()) << windows.status();
  // Windows start at 0 and 3 ... 9 - 4 = 5: two of them.
  ASSERT_EQ((*windows)->size(), 2);
  Tensor x, y;
  const int64_t idx[] = {1};
  (*windows)->Gather(idx, &x, &y);
  ASSERT_EQ(x.shape(), (Shape{1, 4, 3}));
  // Window at 3 reads "abca" and predicts "bcab".
  EXPECT_EQ(x[0 * 3 + 0], 1.0f);
  EXPECT_EQ(x[1 * 3 + 1], 1.0f);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[3], 1.0f);
  // Train "abcabc": counts a2 b2 c2 (+1 each) = 3/9; every char costs ln 3.
  EXPECT_NEAR(corpus->UnigramCrossEntropy(0, 6, 6, 10), std::log(3.0), 1e-12);
  EXPECT_FALSE(corpus->Windows(0, 4, 4, 1).ok());
  EXPECT_FALSE(CharCorpus::FromText("a").ok());
  EXPECT_EQ(CharCorpus::FromFile("/nonexistent/file.txt").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SequenceDataTest, DistributionSamplersHaveTheirMoments) {
  auto gauss = Gaussian1D::Create(4.0f, 1.25f);
  ASSERT_TRUE(gauss.ok());
  Rng rng(3);
  Tensor x;
  (*gauss)->Sample(20000, &rng, &x, nullptr);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < x.size(); ++i) mean += x[i];
  mean /= x.size();
  for (int64_t i = 0; i < x.size(); ++i) var += (x[i] - mean) * (x[i] - mean);
  EXPECT_NEAR(mean, 4.0, 0.03);
  EXPECT_NEAR(std::sqrt(var / x.size()), 1.25, 0.03);

  auto ring = GaussianRing::Create(8, 2.0f, 0.02f);
  ASSERT_TRUE(ring.ok());
  (*ring)->Sample(1000, &rng, &x, nullptr);
  ASSERT_EQ(x.shape(), (Shape{1000, 2}));
  for (int64_t i = 0; i < 1000; ++i) {
    EXPECT_NEAR(std::hypot(x[2 * i], x[2 * i + 1]), 2.0, 0.12);
  }
  EXPECT_FALSE(Gaussian1D::Create(0.0f, 0.0f).ok());
  EXPECT_FALSE(GaussianRing::Create(0, 1.0f, 0.1f).ok());
}

TEST(GenerateTest, OneToManyFeedsOutputsBack) {
  // Identity-like model: 1 feature in, 1 out per step; next input = output.
  ModelSpec spec;
  spec.input_shape = {3, 1};
  spec.loss = LossKind::kMse;
  spec.init = InitKind::kGlorot;
  spec.layers.resize(2);
  spec.layers[0].kind = "rnn";
  spec.layers[0].units = 4;
  spec.layers[0].return_sequences = true;
  spec.layers[1].kind = "time_dense";
  spec.layers[1].units = 1;
  auto model = Model::Build(spec);
  ASSERT_TRUE(model.ok()) << model.status();
  Tensor prime({1, 2, 1});
  prime[0] = 0.3f;
  prime[1] = -0.7f;
  std::vector<float> generated;
  auto feed = [&](const Tensor& last, Tensor* next) {
    generated.push_back(last[0]);
    (*next)[0] = last[0];
  };
  ASSERT_TRUE(GenerateSequence(model->get(), prime, 4, feed).ok());
  ASSERT_EQ(generated.size(), 4u);
  // The same sequence run whole (stateless) gives the same outputs.
  Tensor whole({1, 5, 1});
  whole[0] = 0.3f;
  whole[1] = -0.7f;
  for (int s = 0; s < 3; ++s) whole[2 + s] = generated[s];
  const Tensor& out = (*model)->layers().Forward(whole, Mode::kEval);
  for (int s = 0; s < 4; ++s) EXPECT_NEAR(out[1 + s], generated[s], 1e-6);
  EXPECT_FALSE(RecurrentLayers(&(*model)->layers())[0]->stateful());

  Tensor bad({1, 2, 3});
  EXPECT_EQ(GenerateSequence(model->get(), bad, 1, feed).code(),
            absl::StatusCode::kInvalidArgument);
}

// ----- Bad input ------------------------------------------------------------

absl::Status BuildOne(const std::string& kind, int64_t units, int64_t window,
                      const Shape& in, bool sequences = false) {
  LayerSpec spec;
  spec.kind = kind;
  spec.units = units;
  spec.bptt_window = window;
  spec.return_sequences = sequences;
  Rng rng(1);
  Shape out;
  return MakeLayer(spec, kind + "0", in, InitKind::kGlorot, &rng, &out)
      .status();
}

void ExpectInvalid(const absl::Status& s, const std::string& mentions) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find(mentions), absl::string_view::npos) << s;
}

TEST(BadInputTest, RecurrentSpecsAndShapes) {
  for (const std::string kind : {"rnn", "lstm"}) {
    ExpectInvalid(BuildOne(kind, 0, 0, {5, 3}), "units");
    ExpectInvalid(BuildOne(kind, 4, -1, {5, 3}), "bptt_window");
    ExpectInvalid(BuildOne(kind, 4, 0, {0, 3}), "sequence length");
    ExpectInvalid(BuildOne(kind, 4, 0, {0, 3}, true), "sequence length");
    ExpectInvalid(BuildOne(kind, 4, 0, {15}), "[steps, features]");
    ExpectInvalid(BuildOne(kind, 4, 0, {5, 0}), "features");
    EXPECT_TRUE(BuildOne(kind, 4, 2, {5, 3}).ok());
  }
  ExpectInvalid(BuildOne("time_dense", 0, 0, {5, 3}), "units");
  ExpectInvalid(BuildOne("time_dense", 2, 0, {15}), "[steps, features]");

  ModelSpec spec;
  spec.input_shape = {0, 3};
  spec.loss = LossKind::kMse;
  spec.layers.resize(1);
  spec.layers[0].kind = "lstm";
  spec.layers[0].units = 4;
  EXPECT_EQ(Model::Build(spec).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BadInputTest, UnequalSequenceLengthsAreRejected) {
  auto ok = PackSequences({{1, 2, 3, 4}, {5, 6, 7, 8}}, 2);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->shape(), (Shape{2, 2, 2}));
  EXPECT_EQ((*ok)[6], 7.0f);
  ExpectInvalid(PackSequences({{1, 2, 3, 4}, {5, 6}}, 2).status(),
                "unequal length");
  ExpectInvalid(PackSequences({{1, 2}, {}}, 2).status(), "length is zero");
  ExpectInvalid(PackSequences({{1, 2, 3}}, 2).status(), "whole number");
  ExpectInvalid(PackSequences({}, 2).status(), "empty");
}

}  // namespace
}  // namespace nnlab

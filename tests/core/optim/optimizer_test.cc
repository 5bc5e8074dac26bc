// Optimizer tests: hand-computed first updates on a quadratic, convergence,
// weight decay, clipping, schedules, validation and state round-trips.
#include "core/optim/optimizer.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "core/optim/optimizer_kinds.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;

constexpr OptimizerKind kAllKinds[] = {
    OptimizerKind::kSgd,     OptimizerKind::kMomentum, OptimizerKind::kNesterov,
    OptimizerKind::kAdagrad, OptimizerKind::kRmsprop,  OptimizerKind::kAdadelta,
    OptimizerKind::kAdam};

// E(w) = 0.5 * sum_i a_i (w_i - c_i)^2 over three scalars held in two
// parameters ("q.w" with two elements, "q.b" with one), so per-parameter
// state is exercised across parameters.
constexpr int kN = 3;
constexpr double kA[kN] = {1.0, 4.0, 0.5};
constexpr double kC[kN] = {0.5, -1.0, 2.0};
constexpr double kW0[kN] = {2.0, 1.0, -1.0};

struct Quadratic {
  Tensor w{Shape{2}}, gw{Shape{2}}, b{Shape{1}}, gb{Shape{1}};

  Quadratic() {
    for (int i = 0; i < kN; ++i) *Value(i) = static_cast<float>(kW0[i]);
  }
  std::vector<Param> Params() { return {{"q.w", &w, &gw}, {"q.b", &b, &gb}}; }
  float* Value(int i) { return i < 2 ? &w[i] : &b[0]; }
  float* Grad(int i) { return i < 2 ? &gw[i] : &gb[0]; }
  // Sets the gradient dE/dw_i = a_i (w_i - c_i) at the current weights.
  void SetGradient() {
    for (int i = 0; i < kN; ++i) {
      *Grad(i) = static_cast<float>(kA[i] * (*Value(i) - kC[i]));
    }
  }
};

// The state slot `name` of `opt`, or null.
Tensor* FindSlot(Optimizer* opt, const std::string& name) {
  for (auto& [slot_name, tensor] : opt->State()) {
    if (slot_name == name) return tensor;
  }
  return nullptr;
}

// Element i of the three scalars in state slot `slot` ("<param>.<slot>").
double SlotValue(Optimizer* opt, const std::string& slot, int i) {
  Tensor* t = FindSlot(opt, (i < 2 ? "q.w." : "q.b.") + slot);
  EXPECT_NE(t, nullptr) << slot;
  if (t == nullptr) return std::numeric_limits<double>::quiet_NaN();
  return (*t)[i < 2 ? i : 0];
}

void ExpectRel(double actual, double expected, const std::string& what) {
  EXPECT_NEAR(actual, expected, 1e-6 * std::abs(expected)) << what;
}

// Runs three steps of `config` on the quadratic and compares weights (and
// the named state slots) with `reference`, which advances double-precision
// weights w and state s[slot][i] by one step given gradient g.
template <typename Ref>
void CheckFirstThreeSteps(const OptimizerConfig& config,
                          const std::vector<std::string>& slots,
                          Ref reference) {
  ASSERT_TRUE(ValidateOptimizerConfig(config).ok());
  Quadratic q;
  auto opt = MakeOptimizer(config, q.Params());
  double w[kN], s[2][kN] = {};
  for (int i = 0; i < kN; ++i) w[i] = kW0[i];
  for (int t = 1; t <= 3; ++t) {
    q.SetGradient();
    opt->Step(LearningRateAt(config, t - 1));
    for (int i = 0; i < kN; ++i) {
      const double g = kA[i] * (w[i] - kC[i]);
      reference(t, g, &w[i], &s[0][i], &s[1][i]);
    }
    EXPECT_EQ(opt->step(), t);
    for (int i = 0; i < kN; ++i) {
      const std::string where = std::string(opt->name()) + " step " +
                                std::to_string(t) + " w[" + std::to_string(i) +
                                "]";
      ExpectRel(*q.Value(i), w[i], where);
      for (size_t k = 0; k < slots.size(); ++k) {
        ExpectRel(SlotValue(opt.get(), slots[k], i), s[k][i],
                  where + " " + slots[k]);
      }
    }
  }
}

OptimizerConfig Config(OptimizerKind kind, float lr) {
  OptimizerConfig c;
  c.kind = kind;
  c.lr = lr;
  return c;
}

TEST(OptimizerHandComputed, Sgd) {
  CheckFirstThreeSteps(
      Config(OptimizerKind::kSgd, 0.1f), {},
      [](int, double g, double* w, double*, double*) { *w = *w - 0.1 * g; });
}

TEST(OptimizerHandComputed, Momentum) {
  CheckFirstThreeSteps(Config(OptimizerKind::kMomentum, 0.1f), {"velocity"},
                       [](int, double g, double* w, double* v, double*) {
                         *v = 0.9 * *v + 0.1 * g;
                         *w = *w - *v;
                       });
}

TEST(OptimizerHandComputed, Nesterov) {
  CheckFirstThreeSteps(Config(OptimizerKind::kNesterov, 0.1f), {"velocity"},
                       [](int, double g, double* w, double* v, double*) {
                         *v = 0.9 * *v + g;
                         *w = *w - 0.1 * (g + 0.9 * *v);
                       });
}

// Nesterov's stored weights are the look-ahead point of the textbook form
// u = mu u + lr grad(theta - mu u); theta -= u.
TEST(OptimizerHandComputed, NesterovMatchesLookAheadForm) {
  Quadratic q;
  auto opt = MakeOptimizer(Config(OptimizerKind::kNesterov, 0.1f), q.Params());
  double theta[kN], u[kN] = {};
  for (int i = 0; i < kN; ++i) theta[i] = kW0[i];  // u = 0: theta = w.
  for (int t = 1; t <= 5; ++t) {
    q.SetGradient();
    opt->Step(0.1f);
    for (int i = 0; i < kN; ++i) {
      const double look_ahead = theta[i] - 0.9 * u[i];
      u[i] = 0.9 * u[i] + 0.1 * kA[i] * (look_ahead - kC[i]);
      theta[i] -= u[i];
      ExpectRel(*q.Value(i), theta[i] - 0.9 * u[i],
                "step " + std::to_string(t) + " w[" + std::to_string(i) + "]");
    }
  }
}

TEST(OptimizerHandComputed, Adagrad) {
  CheckFirstThreeSteps(Config(OptimizerKind::kAdagrad, 0.1f), {"sum_sq"},
                       [](int, double g, double* w, double* G, double*) {
                         *G = *G + g * g;
                         *w = *w - 0.1 * g / (std::sqrt(*G) + 1e-8);
                       });
}

TEST(OptimizerHandComputed, Rmsprop) {
  CheckFirstThreeSteps(Config(OptimizerKind::kRmsprop, 0.01f), {"mean_sq"},
                       [](int, double g, double* w, double* E, double*) {
                         *E = 0.9 * *E + 0.1 * g * g;
                         *w = *w - 0.01 * g / (std::sqrt(*E) + 1e-8);
                       });
}

TEST(OptimizerHandComputed, RmspropDefaults) {
  CheckFirstThreeSteps(Config(OptimizerKind::kRmsprop, 0.0f), {"mean_sq"},
                       [](int, double g, double* w, double* E, double*) {
                         *E = 0.9 * *E + 0.1 * g * g;
                         *w = *w - 0.001 * g / (std::sqrt(*E) + 1e-8);
                       });
}

// Defaults: lr multiplier 1, rho 0.95 (rho left unset), eps 1e-6.
TEST(OptimizerHandComputed, Adadelta) {
  CheckFirstThreeSteps(
      Config(OptimizerKind::kAdadelta, 0.0f), {"mean_sq", "mean_sq_update"},
      [](int, double g, double* w, double* Eg, double* Edx) {
        *Eg = 0.95 * *Eg + 0.05 * g * g;
        const double dx = -std::sqrt(*Edx + 1e-6) / std::sqrt(*Eg + 1e-6) * g;
        *Edx = 0.95 * *Edx + 0.05 * dx * dx;
        *w = *w + 1.0 * dx;
      });
}

TEST(OptimizerHandComputed, AdadeltaExplicitRhoAndLr) {
  OptimizerConfig c = Config(OptimizerKind::kAdadelta, 0.5f);
  c.rho = 0.8f;
  c.has_rho = true;
  c.epsilon = 1e-3f;
  CheckFirstThreeSteps(
      c, {"mean_sq", "mean_sq_update"},
      [](int, double g, double* w, double* Eg, double* Edx) {
        const double rho = 0.8f, eps = 1e-3f;  // As the float config holds.
        *Eg = rho * *Eg + (1 - rho) * g * g;
        const double dx = -std::sqrt(*Edx + eps) / std::sqrt(*Eg + eps) * g;
        *Edx = rho * *Edx + (1 - rho) * dx * dx;
        *w = *w + 0.5 * dx;
      });
}

TEST(OptimizerHandComputed, Adam) {
  CheckFirstThreeSteps(
      Config(OptimizerKind::kAdam, 0.1f), {"m", "v"},
      [](int t, double g, double* w, double* m, double* v) {
        const double b1 = 0.9f, b2 = 0.999f;  // As the float config holds.
        *m = b1 * *m + (1 - b1) * g;
        *v = b2 * *v + (1 - b2) * g * g;
        const double m_hat = *m / (1 - std::pow(b1, t));
        const double v_hat = *v / (1 - std::pow(b2, t));
        *w = *w - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8);
      });
}

// Each optimizer drives the quadratic (condition number 8) from w0 to its
// minimum c, with a constant lr, within 1e-5 in every coordinate.
struct ConvergenceCase {
  OptimizerKind kind;
  float lr;   // 0: the optimizer's default.
  int steps;  // Steps taken; each case converges in about half of them.
};

TEST(OptimizerConvergence, EveryOptimizerReachesTheMinimum) {
  const ConvergenceCase cases[] = {
      {OptimizerKind::kSgd, 0.1f, 500},
      {OptimizerKind::kMomentum, 0.05f, 500},
      {OptimizerKind::kNesterov, 0.05f, 500},
      {OptimizerKind::kAdagrad, 0.5f, 500},
      {OptimizerKind::kRmsprop, 0.01f, 1000},
      {OptimizerKind::kAdadelta, 0.0f, 2000},  // Defaults: lr 1, rho 0.95.
      {OptimizerKind::kAdam, 0.05f, 1000},
  };
  for (const ConvergenceCase& k : cases) {
    const OptimizerConfig config = Config(k.kind, k.lr);
    ASSERT_TRUE(ValidateOptimizerConfig(config).ok());
    Quadratic q;
    auto opt = MakeOptimizer(config, q.Params());
    for (int t = 0; t < k.steps; ++t) {
      q.SetGradient();
      opt->Step(LearningRateAt(config, t));
    }
    for (int i = 0; i < kN; ++i) {
      EXPECT_NEAR(*q.Value(i), kC[i], 1e-5)
          << OptimizerName(k.kind) << " after " << k.steps << " steps, w[" << i
          << "]";
    }
  }
}

TEST(WeightDecay, AddsDecayTimesWeight) {
  Quadratic q;
  q.SetGradient();
  float before[kN];
  for (int i = 0; i < kN; ++i) before[i] = *q.Grad(i);
  ApplyWeightDecay(q.Params(), 0.25f);
  for (int i = 0; i < kN; ++i) {
    ExpectRel(*q.Grad(i), before[i] + 0.25 * kW0[i],
              "grad " + std::to_string(i));
  }
  ApplyWeightDecay(q.Params(), 0.0f);  // No-op.
  for (int i = 0; i < kN; ++i) {
    ExpectRel(*q.Grad(i), before[i] + 0.25 * kW0[i],
              "grad " + std::to_string(i));
  }
}

// grads: q.w = {3, 4}, q.b = {12}: global norm 13.
void SetClipGrads(Quadratic* q) {
  q->gw[0] = 3.0f;
  q->gw[1] = 4.0f;
  q->gb[0] = 12.0f;
}

TEST(ClipGradNorm, ScalesToMaxNormExactly) {
  for (float max_norm : {6.5f, 1.0f, 0.01f, 12.9f}) {
    Quadratic q;
    SetClipGrads(&q);
    EXPECT_DOUBLE_EQ(GlobalGradNorm(q.Params()), 13.0);
    EXPECT_DOUBLE_EQ(ClipGradNorm(q.Params(), max_norm), 13.0);
    const double after = GlobalGradNorm(q.Params());
    EXPECT_NEAR(after, max_norm, 1e-6 * max_norm) << max_norm;
    // Direction kept: every component scaled by max_norm / 13.
    ExpectRel(q.gw[0], 3.0 * max_norm / 13.0, "gw[0]");
    ExpectRel(q.gw[1], 4.0 * max_norm / 13.0, "gw[1]");
    ExpectRel(q.gb[0], 12.0 * max_norm / 13.0, "gb[0]");
  }
}

TEST(ClipGradNorm, UnchangedWhenBelowMaxNorm) {
  for (float max_norm : {13.0f, 100.0f}) {
    Quadratic q;
    SetClipGrads(&q);
    EXPECT_DOUBLE_EQ(ClipGradNorm(q.Params(), max_norm), 13.0);
    EXPECT_EQ(q.gw[0], 3.0f);
    EXPECT_EQ(q.gw[1], 4.0f);
    EXPECT_EQ(q.gb[0], 12.0f);
  }
}

TEST(LearningRateAt, Schedules) {
  OptimizerConfig c = Config(OptimizerKind::kSgd, 0.1f);
  c.decay_steps = 10;
  c.decay_rate = 0.5f;
  EXPECT_FLOAT_EQ(LearningRateAt(c, 0), 0.1f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 12345), 0.1f);

  c.schedule = LrSchedule::kStep;  // lr * rate^floor(t / N).
  EXPECT_FLOAT_EQ(LearningRateAt(c, 0), 0.1f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 9), 0.1f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 10), 0.05f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 19), 0.05f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 25), 0.025f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 100), 0.1f / 1024);

  c.schedule = LrSchedule::kExponential;  // lr * rate^(t / N).
  EXPECT_FLOAT_EQ(LearningRateAt(c, 0), 0.1f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 5), 0.1 * std::sqrt(0.5));
  EXPECT_FLOAT_EQ(LearningRateAt(c, 10), 0.05f);
  EXPECT_FLOAT_EQ(LearningRateAt(c, 15), 0.05 * std::sqrt(0.5));
  EXPECT_FLOAT_EQ(LearningRateAt(c, 1), 0.1 * std::pow(0.5, 0.1));
}

TEST(LearningRateAt, DefaultsWhenLrUnset) {
  const float expected[] = {0.01f, 0.01f, 0.01f, 0.01f, 0.001f, 1.0f, 0.001f};
  for (size_t i = 0; i < std::size(kAllKinds); ++i) {
    OptimizerConfig c = Config(kAllKinds[i], 0.0f);
    EXPECT_FLOAT_EQ(LearningRateAt(c, 0), expected[i])
        << OptimizerName(kAllKinds[i]);
    c.schedule = LrSchedule::kStep;
    c.decay_steps = 2;
    c.decay_rate = 0.1f;
    EXPECT_FLOAT_EQ(LearningRateAt(c, 2), expected[i] * 0.1f)
        << OptimizerName(kAllKinds[i]);
  }
}

TEST(OptimizerName, RoundTripsAndRejectsUnknown) {
  for (OptimizerKind kind : kAllKinds) {
    auto parsed = ParseOptimizerKind(OptimizerName(kind));
    ASSERT_TRUE(parsed.ok()) << OptimizerName(kind);
    EXPECT_EQ(*parsed, kind);
    Quadratic q;
    EXPECT_STREQ(MakeOptimizer(Config(kind, 0.0f), q.Params())->name(),
                 OptimizerName(kind));
  }
  for (const char* bad : {"", "Adam", "lbfgs", "sgd "}) {
    auto parsed = ParseOptimizerKind(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(ValidateOptimizerConfig, AcceptsDefaults) {
  for (OptimizerKind kind : kAllKinds) {
    EXPECT_TRUE(ValidateOptimizerConfig(Config(kind, 0.0f)).ok());
  }
  OptimizerConfig c;
  c.schedule = LrSchedule::kStep;
  EXPECT_TRUE(ValidateOptimizerConfig(c).ok());
  c.schedule = LrSchedule::kExponential;
  c.decay_rate = 1.0f;
  EXPECT_TRUE(ValidateOptimizerConfig(c).ok());
}

TEST(ValidateOptimizerConfig, RejectsBadValuesNamingTheField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* what;
    void (*mutate)(OptimizerConfig*, float nan, float inf);
    const char* field;
  };
  const Case cases[] = {
      {"lr NaN", [](OptimizerConfig* c, float n, float) { c->lr = n; },
       "optimizer.lr"},
      {"lr inf", [](OptimizerConfig* c, float, float i) { c->lr = i; },
       "optimizer.lr"},
      {"lr negative", [](OptimizerConfig* c, float, float) { c->lr = -0.1f; },
       "optimizer.lr"},
      {"momentum negative",
       [](OptimizerConfig* c, float, float) { c->momentum = -0.5f; },
       "optimizer.momentum"},
      {"momentum 1", [](OptimizerConfig* c, float, float) { c->momentum = 1; },
       "optimizer.momentum"},
      {"rho NaN", [](OptimizerConfig* c, float n, float) { c->rho = n; },
       "optimizer.rho"},
      {"rho 1", [](OptimizerConfig* c, float, float) { c->rho = 1.0f; },
       "optimizer.rho"},
      {"beta1 1", [](OptimizerConfig* c, float, float) { c->beta1 = 1.0f; },
       "optimizer.beta1"},
      {"beta1 1.5", [](OptimizerConfig* c, float, float) { c->beta1 = 1.5f; },
       "optimizer.beta1 must be in [0, 1), got 1.5"},
      {"beta2 NaN", [](OptimizerConfig* c, float n, float) { c->beta2 = n; },
       "optimizer.beta2"},
      {"beta2 negative",
       [](OptimizerConfig* c, float, float) { c->beta2 = -0.001f; },
       "optimizer.beta2"},
      {"epsilon NaN",
       [](OptimizerConfig* c, float n, float) { c->epsilon = n; },
       "optimizer.epsilon"},
      {"epsilon negative",
       [](OptimizerConfig* c, float, float) { c->epsilon = -1e-8f; },
       "optimizer.epsilon"},
      {"weight_decay negative",
       [](OptimizerConfig* c, float, float) { c->weight_decay = -1e-4f; },
       "optimizer.weight_decay"},
      {"weight_decay NaN",
       [](OptimizerConfig* c, float n, float) { c->weight_decay = n; },
       "optimizer.weight_decay"},
      {"clip_norm inf",
       [](OptimizerConfig* c, float, float i) { c->clip_norm = i; },
       "optimizer.clip_norm"},
      {"clip_norm negative",
       [](OptimizerConfig* c, float, float) { c->clip_norm = -1.0f; },
       "optimizer.clip_norm"},
      {"decay_steps 0",
       [](OptimizerConfig* c, float, float) {
         c->schedule = LrSchedule::kStep;
         c->decay_steps = 0;
       },
       "optimizer.decay_steps"},
      {"decay_rate 0",
       [](OptimizerConfig* c, float, float) {
         c->schedule = LrSchedule::kExponential;
         c->decay_rate = 0.0f;
       },
       "optimizer.decay_rate"},
      {"decay_rate 2",
       [](OptimizerConfig* c, float, float) {
         c->schedule = LrSchedule::kStep;
         c->decay_rate = 2.0f;
       },
       "optimizer.decay_rate"},
      {"decay_rate NaN, constant schedule",
       [](OptimizerConfig* c, float n, float) { c->decay_rate = n; },
       "optimizer.decay_rate"},
  };
  for (const Case& k : cases) {
    OptimizerConfig c = Config(OptimizerKind::kAdam, 0.0f);
    k.mutate(&c, nan, inf);
    const absl::Status s = ValidateOptimizerConfig(c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << k.what;
    EXPECT_THAT(std::string(s.message()), HasSubstr(k.field)) << k.what;
  }
}

// Slots "<param>.<slot>" shaped like their parameters, in the expected set.
TEST(OptimizerState, HasNamedSlotsShapedLikeParams) {
  const std::vector<std::vector<std::string>> expected = {
      {},
      {"q.w.velocity", "q.b.velocity"},
      {"q.w.velocity", "q.b.velocity"},
      {"q.w.sum_sq", "q.b.sum_sq"},
      {"q.w.mean_sq", "q.b.mean_sq"},
      {"q.w.mean_sq", "q.b.mean_sq", "q.w.mean_sq_update",
       "q.b.mean_sq_update"},
      {"q.w.m", "q.b.m", "q.w.v", "q.b.v"},
  };
  for (size_t k = 0; k < std::size(kAllKinds); ++k) {
    Quadratic q;
    auto opt = MakeOptimizer(Config(kAllKinds[k], 0.0f), q.Params());
    auto state = opt->State();
    std::vector<std::string> names;
    std::vector<const float*> buffers;
    for (auto& [name, tensor] : state) {
      names.push_back(name);
      buffers.push_back(tensor->data());
      const Shape& want =
          name.rfind("q.w.", 0) == 0 ? q.w.shape() : q.b.shape();
      EXPECT_EQ(tensor->shape(), want) << name;
      for (int64_t i = 0; i < tensor->size(); ++i) {
        EXPECT_EQ((*tensor)[i], 0.0f) << name;  // Fresh state is zero.
      }
    }
    EXPECT_THAT(names, ::testing::UnorderedElementsAreArray(expected[k]))
        << OptimizerName(kAllKinds[k]);
    // Step reuses the state buffers (it allocates nothing).
    q.SetGradient();
    opt->Step(LearningRateAt(Config(kAllKinds[k], 0.0f), 0));
    auto after = opt->State();
    ASSERT_EQ(after.size(), buffers.size());
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].second->data(), buffers[i]) << after[i].first;
    }
  }
}

// Copying state values and the step count into a fresh optimizer over
// copied weights continues bit-identically.
TEST(OptimizerState, RestoreContinuesBitIdentically) {
  for (OptimizerKind kind : kAllKinds) {
    const OptimizerConfig config = Config(kind, 0.0f);
    Quadratic a;
    auto opt_a = MakeOptimizer(config, a.Params());
    for (int t = 0; t < 4; ++t) {
      a.SetGradient();
      opt_a->Step(LearningRateAt(config, t));
    }
    Quadratic b;
    b.w.CopyFrom(a.w);
    b.b.CopyFrom(a.b);
    auto opt_b = MakeOptimizer(config, b.Params());
    auto state_a = opt_a->State();
    auto state_b = opt_b->State();
    ASSERT_EQ(state_a.size(), state_b.size());
    for (size_t i = 0; i < state_a.size(); ++i) {
      ASSERT_EQ(state_a[i].first, state_b[i].first);
      state_b[i].second->CopyFrom(*state_a[i].second);
    }
    ASSERT_TRUE(opt_b->RestoreStep(opt_a->step()).ok());

    a.SetGradient();
    b.SetGradient();
    opt_a->Step(LearningRateAt(config, 4));
    opt_b->Step(LearningRateAt(config, 4));
    EXPECT_EQ(opt_a->step(), 5);
    EXPECT_EQ(opt_b->step(), 5);
    EXPECT_EQ(std::memcmp(a.w.data(), b.w.data(), 2 * sizeof(float)), 0)
        << OptimizerName(kind);
    EXPECT_EQ(std::memcmp(a.b.data(), b.b.data(), sizeof(float)), 0)
        << OptimizerName(kind);
    for (size_t i = 0; i < state_a.size(); ++i) {
      EXPECT_EQ(
          std::memcmp(state_a[i].second->data(), state_b[i].second->data(),
                      state_a[i].second->size() * sizeof(float)),
          0)
          << state_a[i].first;
    }
    // The restored weights actually moved (the comparison is not vacuous).
    EXPECT_NE(a.b[0], static_cast<float>(kW0[2])) << OptimizerName(kind);
  }
}

// A step count read from a checkpoint is bounded, so neither the next
// step's number nor Adam's bias correction can overflow.
TEST(OptimizerState, RestoredStepIsBounded) {
  Quadratic q;
  auto opt = MakeOptimizer(Config(OptimizerKind::kAdam, 0.0f), q.Params());
  EXPECT_TRUE(opt->RestoreStep(kMaxSteps).ok());
  EXPECT_EQ(opt->step(), kMaxSteps);
  for (int64_t bad :
       {int64_t{-1}, kMaxSteps + 1, std::numeric_limits<int64_t>::max()}) {
    absl::Status s = opt->RestoreStep(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(opt->step(), kMaxSteps) << "unchanged by a refused step";
  }
  q.SetGradient();
  opt->Step(0.1f);  // From the largest step: finite, and one step on.
  EXPECT_EQ(opt->step(), kMaxSteps + 1);
  EXPECT_TRUE(std::isfinite(q.w[0]) && std::isfinite(q.b[0]));
}

}  // namespace
}  // namespace nnlab

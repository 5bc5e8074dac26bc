#include "server/convert.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/layers/registry.h"
#include "core/status_macros.h"

namespace nnlab::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

// Float fields: finite and >= 0 (NaN fails both comparisons).
absl::Status CheckNonNegative(absl::string_view field, double v) {
  if (!(v >= 0) || !std::isfinite(v)) {
    return Invalid(field, absl::StrCat("must be finite and >= 0, got ", v));
  }
  return absl::OkStatus();
}

absl::Status CheckUnitInterval(absl::string_view field, double v,
                               bool include_one) {
  NNLAB_RETURN_IF_ERROR(CheckNonNegative(field, v));
  if (include_one ? v > 1 : v >= 1) {
    return Invalid(field, absl::StrCat("must be in [0, 1",
                                       include_one ? "]" : ")", ", got ", v));
  }
  return absl::OkStatus();
}

absl::Status CheckCount(absl::string_view field, int64_t v, int64_t lo,
                        int64_t hi) {
  if (v < lo || v > hi) {
    return Invalid(field,
                   absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
  }
  return absl::OkStatus();
}

absl::StatusOr<InitKind> InitFromProto(v1::InitKind kind,
                                       absl::string_view field, bool* has) {
  *has = true;
  switch (kind) {
    case v1::INIT_UNSPECIFIED:
      *has = false;
      return InitKind::kNormal;
    case v1::INIT_NORMAL:
      return InitKind::kNormal;
    case v1::INIT_SCALED_NORMAL:
      return InitKind::kScaledNormal;
    case v1::INIT_GLOROT:
      return InitKind::kGlorot;
    case v1::INIT_HE:
      return InitKind::kHe;
    default:
      return Invalid(field, absl::StrCat("has unknown value ", int(kind)));
  }
}

absl::StatusOr<LossKind> LossFromProto(v1::LossKind kind,
                                       absl::string_view field) {
  switch (kind) {
    case v1::LOSS_UNSPECIFIED:
    case v1::LOSS_SOFTMAX_CROSS_ENTROPY:
      return LossKind::kSoftmaxCrossEntropy;
    case v1::LOSS_MSE:
      return LossKind::kMse;
    case v1::LOSS_SIGMOID_CROSS_ENTROPY:
      return LossKind::kSigmoidCrossEntropy;
    case v1::LOSS_SIGMOID_CROSS_ENTROPY_CLASSES:
      return LossKind::kSigmoidCrossEntropyClasses;
    case v1::LOSS_SEQUENCE_SOFTMAX_CROSS_ENTROPY:
      return LossKind::kSequenceSoftmaxCrossEntropy;
    default:
      return Invalid(field, absl::StrCat("has unknown value ", int(kind)));
  }
}

absl::Status LayersFromProto(
    const google::protobuf::RepeatedPtrField<v1::LayerSpec>& layers,
    absl::string_view field, const Limits& limits, int depth, int* count,
    std::vector<LayerSpec>* out);

absl::Status LayerFromProto(const v1::LayerSpec& p, const std::string& f,
                            const Limits& limits, int depth, int* count,
                            LayerSpec* s) {
  if (++*count > limits.max_layers) {
    return absl::ResourceExhaustedError(absl::StrCat(
        f, ": more than ", limits.max_layers, " layers in the model"));
  }
  if (p.name().size() > 64) {
    return Invalid(absl::StrCat(f, ".name"), "is longer than 64 characters");
  }
  for (char c : p.name()) {
    if (c < 0x21 || c > 0x7e || c == '/') {
      return Invalid(absl::StrCat(f, ".name"),
                     "may hold only printable ASCII without spaces or '/'");
    }
  }
  s->name = p.name();
  NNLAB_ASSIGN_OR_RETURN(
      s->init, InitFromProto(p.init(), absl::StrCat(f, ".init"), &s->has_init));
  const int64_t max_dim = limits.max_dim;
  switch (p.kind_case()) {
    case v1::LayerSpec::kDense:
      s->kind = "dense";
      s->units = p.dense().units();
      return CheckCount(absl::StrCat(f, ".dense.units"), s->units, 1, max_dim);
    case v1::LayerSpec::kTimeDense:
      s->kind = "time_dense";
      s->units = p.time_dense().units();
      return CheckCount(absl::StrCat(f, ".time_dense.units"), s->units, 1,
                        max_dim);
    case v1::LayerSpec::kSigmoid:
      s->kind = "sigmoid";
      return absl::OkStatus();
    case v1::LayerSpec::kTanh:
      s->kind = "tanh";
      return absl::OkStatus();
    case v1::LayerSpec::kRelu:
      s->kind = "relu";
      return absl::OkStatus();
    case v1::LayerSpec::kFlatten:
      s->kind = "flatten";
      return absl::OkStatus();
    case v1::LayerSpec::kGlobalAvgPool:
      s->kind = "global_avg_pool";
      return absl::OkStatus();
    case v1::LayerSpec::kLeakyRelu: {
      s->kind = "leaky_relu";
      const float a = p.leaky_relu().alpha();
      NNLAB_RETURN_IF_ERROR(
          CheckUnitInterval(absl::StrCat(f, ".leaky_relu.alpha"), a, false));
      s->alpha = a == 0 ? 0.01f : a;
      return absl::OkStatus();
    }
    case v1::LayerSpec::kDropout: {
      s->kind = "dropout";
      const float k = p.dropout().keep_prob();
      NNLAB_RETURN_IF_ERROR(
          CheckUnitInterval(absl::StrCat(f, ".dropout.keep_prob"), k, true));
      s->keep_prob = k == 0 ? 0.5f : k;
      return absl::OkStatus();
    }
    case v1::LayerSpec::kBatchNorm: {
      s->kind = "batch_norm";
      const float m = p.batch_norm().momentum();
      const float e = p.batch_norm().epsilon();
      NNLAB_RETURN_IF_ERROR(
          CheckUnitInterval(absl::StrCat(f, ".batch_norm.momentum"), m, false));
      NNLAB_RETURN_IF_ERROR(
          CheckNonNegative(absl::StrCat(f, ".batch_norm.epsilon"), e));
      s->momentum = m == 0 ? 0.9f : m;
      s->epsilon = e == 0 ? 1e-5f : e;
      return absl::OkStatus();
    }
    case v1::LayerSpec::kConv2D: {
      s->kind = "conv2d";
      const v1::Conv2d& c = p.conv2d();
      s->filters = c.filters();
      s->kernel = c.kernel() == 0 ? 3 : c.kernel();
      s->stride = c.stride() == 0 ? 1 : c.stride();
      s->padding = c.padding();
      NNLAB_RETURN_IF_ERROR(
          CheckCount(absl::StrCat(f, ".conv2d.filters"), s->filters, 1, 65536));
      NNLAB_RETURN_IF_ERROR(
          CheckCount(absl::StrCat(f, ".conv2d.kernel"), s->kernel, 1, 1024));
      NNLAB_RETURN_IF_ERROR(
          CheckCount(absl::StrCat(f, ".conv2d.stride"), s->stride, 1, 1024));
      return CheckCount(absl::StrCat(f, ".conv2d.padding"), s->padding, 0,
                        1024);
    }
    case v1::LayerSpec::kMaxPool2D:
    case v1::LayerSpec::kAvgPool2D: {
      const bool max = p.kind_case() == v1::LayerSpec::kMaxPool2D;
      s->kind = max ? "max_pool2d" : "avg_pool2d";
      const v1::Pool2d& q = max ? p.max_pool2d() : p.avg_pool2d();
      s->kernel = q.kernel() == 0 ? 2 : q.kernel();
      s->stride = q.stride() == 0 ? s->kernel : q.stride();
      const std::string g = absl::StrCat(f, ".", s->kind);
      NNLAB_RETURN_IF_ERROR(
          CheckCount(absl::StrCat(g, ".kernel"), s->kernel, 1, 1024));
      return CheckCount(absl::StrCat(g, ".stride"), s->stride, 1, 1024);
    }
    case v1::LayerSpec::kResidual: {
      s->kind = "residual";
      if (depth + 1 > limits.max_depth) {
        return Invalid(f, absl::StrCat("nests residual blocks deeper than ",
                                       limits.max_depth));
      }
      if (p.residual().body().empty()) {
        return Invalid(absl::StrCat(f, ".residual.body"), "is empty");
      }
      return LayersFromProto(p.residual().body(),
                             absl::StrCat(f, ".residual.body"), limits,
                             depth + 1, count, &s->body);
    }
    case v1::LayerSpec::kRnn:
    case v1::LayerSpec::kLstm: {
      const bool rnn = p.kind_case() == v1::LayerSpec::kRnn;
      s->kind = rnn ? "rnn" : "lstm";
      const v1::Recurrent& r = rnn ? p.rnn() : p.lstm();
      const std::string g = absl::StrCat(f, ".", s->kind);
      s->units = r.units();
      s->return_sequences = r.return_sequences();
      s->bptt_window = r.bptt_window();
      NNLAB_RETURN_IF_ERROR(
          CheckCount(absl::StrCat(g, ".units"), s->units, 1, 65536));
      return CheckCount(absl::StrCat(g, ".bptt_window"), s->bptt_window, 0,
                        max_dim);
    }
    case v1::LayerSpec::KIND_NOT_SET:
      break;
  }
  return Invalid(f, "sets no layer kind (e.g. dense { units: 10 })");
}

absl::Status LayersFromProto(
    const google::protobuf::RepeatedPtrField<v1::LayerSpec>& layers,
    absl::string_view field, const Limits& limits, int depth, int* count,
    std::vector<LayerSpec>* out) {
  out->resize(layers.size());
  for (int i = 0; i < layers.size(); ++i) {
    NNLAB_RETURN_IF_ERROR(LayerFromProto(layers[i],
                                         absl::StrCat(field, "[", i, "]"),
                                         limits, depth, count, &(*out)[i]));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Shape> ShapeFromProto(
    const google::protobuf::RepeatedField<int64_t>& dims,
    absl::string_view field, const Limits& limits, bool allow_zero) {
  if (dims.size() > 8) {
    return Invalid(field, absl::StrCat("has ", dims.size(),
                                       " dimensions; at most 8 are allowed"));
  }
  Shape shape;
  double elements = 1;
  for (int i = 0; i < dims.size(); ++i) {
    const int64_t d = dims[i];
    if (d < (allow_zero ? 0 : 1) || d > limits.max_dim) {
      return Invalid(absl::StrCat(field, "[", i, "]"),
                     absl::StrCat("must be in [", allow_zero ? 0 : 1, ", ",
                                  limits.max_dim, "], got ", d));
    }
    elements *= double(d);
    shape.push_back(d);
  }
  if (elements > double(limits.max_tensor_elements)) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, " has ", elements, " elements; the limit is ",
                     limits.max_tensor_elements));
  }
  return shape;
}

void ShapeToProto(const Shape& shape,
                  google::protobuf::RepeatedField<int64_t>* dims) {
  dims->Clear();
  for (int64_t d : shape) dims->Add(d);
}

absl::StatusOr<ModelSpec> ModelSpecFromProto(const v1::ModelSpec& proto,
                                             absl::string_view field,
                                             const Limits& limits) {
  ModelSpec spec;
  if (proto.name().size() > 256) {
    return Invalid(absl::StrCat(field, ".name"),
                   "is longer than 256 characters");
  }
  spec.name = proto.name();
  if (proto.input_shape().empty()) {
    return Invalid(absl::StrCat(field, ".input_shape"),
                   "is empty (e.g. input_shape: [784])");
  }
  NNLAB_ASSIGN_OR_RETURN(
      spec.input_shape,
      ShapeFromProto(proto.input_shape(), absl::StrCat(field, ".input_shape"),
                     limits));
  if (proto.layers().empty()) {
    return Invalid(absl::StrCat(field, ".layers"), "is empty");
  }
  int count = 0;
  NNLAB_RETURN_IF_ERROR(LayersFromProto(proto.layers(),
                                        absl::StrCat(field, ".layers"), limits,
                                        0, &count, &spec.layers));
  NNLAB_ASSIGN_OR_RETURN(
      spec.loss, LossFromProto(proto.loss(), absl::StrCat(field, ".loss")));
  bool has_init = false;
  NNLAB_ASSIGN_OR_RETURN(
      spec.init,
      InitFromProto(proto.init(), absl::StrCat(field, ".init"), &has_init));
  switch (proto.bias_init()) {
    case v1::BIAS_INIT_UNSPECIFIED:
      spec.bias_init = BiasInit::kDefault;
      break;
    case v1::BIAS_INIT_ZERO:
      spec.bias_init = BiasInit::kZero;
      break;
    case v1::BIAS_INIT_NORMAL:
      spec.bias_init = BiasInit::kNormal;
      break;
    case v1::BIAS_INIT_CENTERED:
      spec.bias_init = BiasInit::kCentered;
      break;
    default:
      return Invalid(
          absl::StrCat(field, ".bias_init"),
          absl::StrCat("has unknown value ", int(proto.bias_init())));
  }
  spec.seed = proto.seed();
  return spec;
}

double EstimateParameters(const ModelSpec& spec) {
  return double(EstimateModel(spec).params);
}

double EstimateSampleElements(const ModelSpec& spec) {
  return double(EstimateModel(spec).buffer_floats);
}

absl::Status CheckBatchSize(const ModelSpec& spec, int64_t batch,
                            const Limits& limits) {
  return CheckBatchSize(EstimateSampleElements(spec), batch, limits);
}

absl::Status CheckBatchSize(double sample_elements, int64_t batch,
                            const Limits& limits) {
  const double elements = sample_elements * double(batch);
  if (elements > double(limits.max_tensor_elements)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a batch of ", batch, " samples needs a buffer of about ", elements,
        " elements in this model; the server's limit is ",
        limits.max_tensor_elements, " (send smaller batches)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Model>> BuildModelChecked(
    const ModelSpec& spec, absl::string_view field, const Limits& limits) {
  // Decided before anything is allocated: a spec over the limit costs the
  // server no memory, however large it asks. The limits come first, so a
  // spec both over them and invalid is refused for its size.
  const ModelCost cost = EstimateModel(spec);
  if (cost.params > limits.max_params) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, " has ", cost.params,
                     " parameters; the server's limit is ", limits.max_params));
  }
  // Layers allocate their per-sample buffers at build time (a convolution
  // its im2col matrix), so a few parameters can ask for terabytes.
  if (cost.buffer_floats > limits.max_tensor_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        field, " needs a buffer of about ", double(cost.buffer_floats),
        " elements per sample; the server's limit is ",
        limits.max_tensor_elements));
  }
  // Build's own error, without building the layers before it.
  if (!cost.status.ok()) {
    return absl::Status(cost.status.code(),
                        absl::StrCat(field, ": ", cost.status.message()));
  }
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Build(spec);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(field, ": ", model.status().message()));
  }
  // The core's estimate is exact for every spec that builds (tests hold it
  // to the built count); this keeps the limit should the two drift apart.
  const int64_t n = (*model)->ParameterCount();
  if (n > limits.max_params) {
    return absl::ResourceExhaustedError(
        absl::StrCat(field, " has ", n, " parameters; the server's limit is ",
                     limits.max_params));
  }
  return model;
}

absl::StatusOr<OptimizerConfig> OptimizerFromProto(const v1::OptimizerConfig& p,
                                                   absl::string_view field) {
  OptimizerConfig c;
  auto f = [&](absl::string_view name) {
    return absl::StrCat(field, ".", name);
  };
  switch (p.kind()) {
    case v1::OPTIMIZER_UNSPECIFIED:
    case v1::OPTIMIZER_SGD:
      c.kind = OptimizerKind::kSgd;
      break;
    case v1::OPTIMIZER_MOMENTUM:
      c.kind = OptimizerKind::kMomentum;
      break;
    case v1::OPTIMIZER_NESTEROV:
      c.kind = OptimizerKind::kNesterov;
      break;
    case v1::OPTIMIZER_ADAGRAD:
      c.kind = OptimizerKind::kAdagrad;
      break;
    case v1::OPTIMIZER_RMSPROP:
      c.kind = OptimizerKind::kRmsprop;
      break;
    case v1::OPTIMIZER_ADADELTA:
      c.kind = OptimizerKind::kAdadelta;
      break;
    case v1::OPTIMIZER_ADAM:
      c.kind = OptimizerKind::kAdam;
      break;
    default:
      return Invalid(f("kind"),
                     absl::StrCat("has unknown value ", int(p.kind())));
  }
  NNLAB_RETURN_IF_ERROR(
      CheckNonNegative(f("learning_rate"), p.learning_rate()));
  if (p.learning_rate() > 1e6) {
    return Invalid(f("learning_rate"), "must be <= 1e6");
  }
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval(f("momentum"), p.momentum(), false));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval(f("rho"), p.rho(), false));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval(f("beta1"), p.beta1(), false));
  NNLAB_RETURN_IF_ERROR(CheckUnitInterval(f("beta2"), p.beta2(), false));
  NNLAB_RETURN_IF_ERROR(CheckNonNegative(f("epsilon"), p.epsilon()));
  NNLAB_RETURN_IF_ERROR(CheckNonNegative(f("weight_decay"), p.weight_decay()));
  NNLAB_RETURN_IF_ERROR(CheckNonNegative(f("clip_norm"), p.clip_norm()));
  NNLAB_RETURN_IF_ERROR(
      CheckUnitInterval(f("decay_rate"), p.decay_rate(), true));
  NNLAB_RETURN_IF_ERROR(
      CheckCount(f("decay_steps"), p.decay_steps(), 0, int64_t{1} << 40));
  c.lr = p.learning_rate();
  if (p.momentum() > 0) c.momentum = p.momentum();
  if (p.rho() > 0) {
    c.rho = p.rho();
    c.has_rho = true;
  }
  if (p.beta1() > 0) c.beta1 = p.beta1();
  if (p.beta2() > 0) c.beta2 = p.beta2();
  c.epsilon = p.epsilon();
  c.weight_decay = p.weight_decay();
  c.clip_norm = p.clip_norm();
  switch (p.schedule()) {
    case v1::SCHEDULE_UNSPECIFIED:
    case v1::SCHEDULE_CONSTANT:
      c.schedule = LrSchedule::kConstant;
      break;
    case v1::SCHEDULE_STEP:
      c.schedule = LrSchedule::kStep;
      break;
    case v1::SCHEDULE_EXPONENTIAL:
      c.schedule = LrSchedule::kExponential;
      break;
    default:
      return Invalid(f("schedule"),
                     absl::StrCat("has unknown value ", int(p.schedule())));
  }
  if (p.decay_steps() > 0) c.decay_steps = p.decay_steps();
  if (p.decay_rate() > 0) c.decay_rate = p.decay_rate();
  absl::Status s = ValidateOptimizerConfig(c);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
  }
  return c;
}

namespace {

// The uint8_data encoding: value i = float(byte i) / uint8_divisor.
absl::StatusOr<Tensor> TensorFromBytes(const v1::Tensor& p,
                                       absl::string_view field, Shape shape) {
  const float divisor = p.uint8_divisor();
  if (!(std::isfinite(divisor) && divisor > 0.0f)) {
    return Invalid(absl::StrCat(field, ".uint8_divisor"),
                   absl::StrCat("is ", divisor,
                                "; uint8_data needs a finite divisor > 0"));
  }
  const int64_t n = NumElements(shape);
  if (p.uint8_data().size() != size_t(n)) {
    return Invalid(absl::StrCat(field, ".uint8_data"),
                   absl::StrCat("has ", p.uint8_data().size(), " bytes; shape ",
                                ShapeToString(shape), " needs ", n));
  }
  Tensor t(shape);
  const auto* src = reinterpret_cast<const uint8_t*>(p.uint8_data().data());
  float* dst = t.data();
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / divisor;
  // Finite bytes over a divisor > 0 can still overflow: 255 / 1e-45.
  if (!t.AllFinite()) {
    return Invalid(field, "contains NaN or infinity");
  }
  return t;
}

}  // namespace

absl::StatusOr<Tensor> TensorFromProto(const v1::Tensor& p,
                                       absl::string_view field,
                                       const Limits& limits) {
  if (p.shape().empty()) {
    return Invalid(absl::StrCat(field, ".shape"), "is empty");
  }
  NNLAB_ASSIGN_OR_RETURN(
      Shape shape,
      ShapeFromProto(p.shape(), absl::StrCat(field, ".shape"), limits,
                     /*allow_zero=*/true));
  const int64_t n = NumElements(shape);
  const bool bytes = !p.uint8_data().empty() || p.uint8_divisor() != 0.0f;
  if ((!p.data().empty()) + (!p.raw_data().empty()) + bytes > 1) {
    return Invalid(field,
                   "sets more than one of data, raw_data and uint8_data; use "
                   "one");
  }
  // Sizes are checked before allocating: the shape is only a claim, and a
  // few bytes must not make the server reserve the limit.
  if (bytes) return TensorFromBytes(p, field, std::move(shape));
  const bool raw = !p.raw_data().empty();
  if (raw && p.raw_data().size() != size_t(n) * 4) {
    return Invalid(absl::StrCat(field, ".raw_data"),
                   absl::StrCat("has ", p.raw_data().size(), " bytes; shape ",
                                ShapeToString(shape), " needs ", n * 4));
  }
  if (!raw && p.data_size() != n) {
    return Invalid(absl::StrCat(field, ".data"),
                   absl::StrCat("has ", p.data_size(), " values; shape ",
                                ShapeToString(shape), " needs ", n));
  }
  Tensor t(shape);
  // Little-endian on the wire; x86-64 and arm64 hosts are little-endian.
  static_assert(sizeof(float) == 4, "float32 expected");
  if (n > 0) {
    std::memcpy(t.data(),
                raw ? static_cast<const void*>(p.raw_data().data())
                    : static_cast<const void*>(p.data().data()),
                size_t(n) * 4);
  }
  if (!t.AllFinite()) {
    return Invalid(field, "contains NaN or infinity");
  }
  return t;
}

void TensorToProto(const Tensor& t, bool raw, v1::Tensor* p) {
  p->Clear();
  ShapeToProto(t.shape(), p->mutable_shape());
  if (raw) {
    p->set_raw_data(reinterpret_cast<const char*>(t.data()),
                    size_t(t.size()) * 4);
  } else {
    p->mutable_data()->Resize(static_cast<int>(t.size()), 0.0f);
    if (t.size() > 0) {
      std::memcpy(p->mutable_data()->mutable_data(), t.data(),
                  size_t(t.size()) * 4);
    }
  }
}

std::vector<int64_t> TimestepSample(int64_t steps) {
  std::vector<int64_t> picked;
  if (steps <= kMaxTimestepPoints) {
    for (int64_t t = 0; t < steps; ++t) picked.push_back(t);
    return picked;
  }
  // round(i (T - 1) / (K - 1)) in integers; distinct because T > K.
  const int64_t last = steps - 1, intervals = kMaxTimestepPoints - 1;
  for (int64_t i = 0; i < kMaxTimestepPoints; ++i) {
    picked.push_back((2 * i * last + intervals) / (2 * intervals));
  }
  return picked;
}

void LayerStatsToProto(const LayerStats& s, v1::LayerStats* p) {
  p->set_name(s.name);
  p->set_kind(s.kind);
  p->set_grad_bias_norm(s.grad_bias_norm);
  p->set_grad_weight_norm(s.grad_weight_norm);
  p->set_weight_norm(s.weight_norm);
  p->set_update_ratio(s.update_ratio);
  p->set_activation_mean(s.activation_mean);
  p->set_activation_std(s.activation_std);
  p->set_saturated_fraction(s.saturated_fraction);
  for (int64_t t : TimestepSample(int64_t(s.timestep_grad_norms.size()))) {
    p->add_timestep_grad_norms(s.timestep_grad_norms[t]);
    p->add_timestep_indices(static_cast<int32_t>(t));
  }
}

void StepStatsToEvent(const StepStats& s, v1::MetricEvent* e) {
  e->set_step(s.step);
  e->set_epoch(s.epoch);
  e->set_phase(v1::PHASE_TRAIN);
  e->set_loss(s.loss);
  e->set_accuracy(s.accuracy);
  e->set_learning_rate(s.learning_rate);
  e->set_grad_norm(s.grad_norm);
  e->set_comm_seconds(s.comm_seconds);
  for (const LayerStats& l : s.layers) LayerStatsToProto(l, e->add_layers());
}

namespace {

v1::SaturationKind SaturationToProto(Saturation s) {
  switch (s) {
    case Saturation::kNone:
      return v1::SATURATION_UNSPECIFIED;
    case Saturation::kDead:
      return v1::SATURATION_DEAD;
    case Saturation::kSaturated:
      return v1::SATURATION_SATURATED;
  }
  return v1::SATURATION_UNSPECIFIED;
}

}  // namespace

void DescribeModel(Model* model, absl::string_view prefix, v1::Model* info) {
  info->set_parameter_count(info->parameter_count() + model->ParameterCount());
  if (info->input_shape().empty()) {
    ShapeToProto(model->input_shape(), info->mutable_input_shape());
  }
  ShapeToProto(model->output_shape(), info->mutable_output_shape());
  LayerStack& stack = model->layers();
  for (int i = 0; i < stack.size(); ++i) {
    Layer* layer = stack.layer(i);
    v1::LayerInfo* l = info->add_layers();
    l->set_name(absl::StrCat(prefix, layer->name()));
    l->set_kind(std::string(layer->kind()));
    const LayerTraits traits = LayerTraitsOf(layer->kind());
    l->set_is_activation(traits.activation);
    l->set_is_recurrent(traits.recurrent);
    l->set_saturation(SaturationToProto(traits.saturation));
    ShapeToProto(stack.output_shape(i), l->mutable_output_shape());
    for (const Param& p : layer->Params()) {
      v1::ParamInfo* pi = l->add_params();
      pi->set_name(absl::StrCat(prefix, p.name));
      ShapeToProto(p.value->shape(), pi->mutable_shape());
    }
  }
}

}  // namespace nnlab::server

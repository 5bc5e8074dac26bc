#include "core/model/model.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/kernels/onednn_conv.h"
#include "core/layers/recurrent.h"
#include "core/layers/registry.h"
#include "core/status_macros.h"

namespace nnlab {

namespace {

std::string LayerName(const LayerSpec& spec, size_t i,
                      const std::string& prefix) {
  return spec.name.empty() ? absl::StrCat(prefix, spec.kind, i)
                           : absl::StrCat(prefix, spec.name);
}

// What Model::Build checks before its layers.
absl::Status CheckModelInput(const ModelSpec& spec) {
  if (spec.input_shape.empty()) {
    return absl::InvalidArgumentError("model: input_shape is empty");
  }
  for (int64_t d : spec.input_shape) {
    if (d <= 0 || d > (int64_t{1} << 24)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model: input_shape ", ShapeToString(spec.input_shape),
                       " has a dimension out of range [1, 2^24]"));
    }
  }
  if (spec.layers.empty()) {
    return absl::InvalidArgumentError("model: no layers");
  }
  return absl::OkStatus();
}

// What Model::Build checks after its layers: the loss fits the output.
absl::Status CheckModelLoss(const Loss* loss, const Shape& out) {
  if (loss == nullptr) {
    return absl::InvalidArgumentError("model: unknown loss");
  }
  if (loss->per_step()) {
    if (out.size() != 2 || out[1] < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model: a per-step classification loss needs outputs [T, classes] "
          "with >= 2 classes per step (return_sequences + time_dense), got ",
          ShapeToString(out)));
    }
  } else if (loss->is_classifier() && (out.size() != 1 || out[0] < 2)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model: a classification loss needs a last layer with >= 2 outputs "
        "per sample, got ",
        ShapeToString(out)));
  }
  return absl::OkStatus();
}

// Overrides the layers' own bias initialisation, after all weights are
// drawn, so kDefault leaves every model's random stream as it was.
void InitBiases(BiasInit init, LayerStack* stack, Rng* rng) {
  if (init == BiasInit::kDefault) return;
  for (const Param& p : stack->Params()) {
    if (!absl::EndsWith(p.name, ".bias")) continue;
    if (init == BiasInit::kZero) {
      p.value->SetZero();
    } else if (init == BiasInit::kNormal) {
      for (int64_t i = 0; i < p.value->size(); ++i) {
        (*p.value)[i] = rng->Normal(0.0f, 1.0f);
      }
    }
  }
  if (init != BiasInit::kCentered) return;
  // b = -W (1/2, ..., 1/2): z = W (a - 1/2) is 0 where the inputs sit at a
  // sigmoid's midpoint. Dense layers only; the others keep their default.
  for (int l = 0; l < stack->size(); ++l) {
    Layer* layer = stack->layer(l);
    if (layer->kind() != "dense") continue;
    std::vector<Param> params = layer->Params();
    const Tensor& w = *params[0].value;
    Tensor& b = *params[1].value;
    const int64_t in = w.dim(1);
    for (int64_t o = 0; o < w.dim(0); ++o) {
      double sum = 0;
      for (int64_t i = 0; i < in; ++i) sum += w[o * in + i];
      b[o] = static_cast<float>(-0.5 * sum);
    }
  }
}

}  // namespace

absl::StatusOr<LayerStack> LayerStack::Build(
    const std::vector<LayerSpec>& specs, const Shape& in, InitKind default_init,
    Rng* rng, const std::string& prefix) {
  LayerStack stack;
  stack.input_shape_ = in;
  Shape shape = in;
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& spec = specs[i];
    const std::string name = LayerName(spec, i, prefix);
    Shape out;
    NNLAB_ASSIGN_OR_RETURN(
        std::unique_ptr<Layer> layer,
        MakeLayer(spec, name, shape, default_init, rng, &out));
    stack.layers_.push_back(std::move(layer));
    stack.shapes_.push_back(out);
    shape = out;
  }
  stack.outputs_.resize(stack.layers_.size());
  return stack;
}

absl::StatusOr<Shape> LayerStack::OutputShape(
    const std::vector<LayerSpec>& specs, const Shape& in,
    const std::string& prefix) {
  Shape shape = in;
  for (size_t i = 0; i < specs.size(); ++i) {
    NNLAB_ASSIGN_OR_RETURN(
        shape,
        LayerOutputShape(specs[i], LayerName(specs[i], i, prefix), shape));
  }
  return shape;
}

ModelCost LayerStack::Estimate(const std::vector<LayerSpec>& specs,
                               const Shape& in, const std::string& prefix) {
  ModelCost cost;
  cost.output_shape = in;
  for (size_t i = 0; i < specs.size(); ++i) {
    LayerCost layer;
    absl::StatusOr<Shape> out = EstimateLayer(
        specs[i], LayerName(specs[i], i, prefix), cost.output_shape, &layer);
    cost.params = CostAdd(cost.params, layer.params);
    cost.buffer_floats = std::max(cost.buffer_floats, layer.buffer_floats);
    if (!out.ok()) {
      cost.status = out.status();
      break;
    }
    cost.output_shape = *std::move(out);
  }
  return cost;
}

ModelCost EstimateModel(const ModelSpec& spec) {
  ModelCost cost;
  cost.status = CheckModelInput(spec);
  if (!cost.status.ok()) return cost;
  cost = LayerStack::Estimate(spec.layers, spec.input_shape, "");
  cost.buffer_floats =
      std::max(cost.buffer_floats, CostElements(spec.input_shape));
  if (cost.status.ok()) {
    cost.status = CheckModelLoss(MakeLoss(spec.loss).get(), cost.output_shape);
  }
  return cost;
}

const Tensor& LayerStack::Forward(const Tensor& x, Mode mode) {
  const Tensor* in = &x;
  size_t first = 0;
  if (mode == Mode::kEval && x.dim(0) > 0 &&
      CurrentConvPath() != ConvPath::kIm2col) {
    if (!chain_planned_) {
      chain_planned_ = true;
      auto chain = std::make_unique<ConvChain>();
      int k = 0;
      while (k < size() && layers_[k]->AppendToConvChain(chain.get())) ++k;
      if (chain->size() > 0) {
        chain_ = std::move(chain);
        chain_layers_ = k;
      }
    }
    if (chain_ != nullptr && chain_->Forward(x, &outputs_[chain_layers_ - 1])) {
      first = chain_layers_;
      in = &outputs_[first - 1];
    }
  }
  fused_layers_ = static_cast<int>(first);
  for (size_t i = first; i < layers_.size(); ++i) {
    layers_[i]->Forward(*in, &outputs_[i], mode);
    in = &outputs_[i];
  }
  return *in;
}

void LayerStack::Backward(const Tensor& grad_out, Tensor* grad_in) {
  if (layers_.empty()) {
    if (grad_in != nullptr) grad_in->CopyFrom(grad_out);
    return;
  }
  // Gradients flow through two ping-pong buffers; the first layer writes
  // straight into grad_in (or skips dE/dx when nobody needs it).
  const Tensor* g = &grad_out;
  for (int i = static_cast<int>(layers_.size()) - 1; i >= 0; --i) {
    Tensor* dst = i == 0 ? grad_in : (g == &grad_a_ ? &grad_b_ : &grad_a_);
    layers_[i]->Backward(*g, dst);
    g = dst;
  }
}

std::vector<Param> LayerStack::Params() {
  std::vector<Param> params;
  for (auto& layer : layers_) {
    for (Param& p : layer->Params()) params.push_back(std::move(p));
  }
  return params;
}

std::vector<std::pair<std::string, Tensor*>> LayerStack::Buffers() {
  std::vector<std::pair<std::string, Tensor*>> buffers;
  for (auto& layer : layers_) {
    for (auto& b : layer->Buffers()) buffers.push_back(std::move(b));
  }
  return buffers;
}

void LayerStack::SetRng(Rng* rng) {
  for (auto& layer : layers_) layer->SetRng(rng);
}

absl::StatusOr<std::unique_ptr<Model>> Model::Build(const ModelSpec& spec) {
  NNLAB_RETURN_IF_ERROR(CheckModelInput(spec));
  std::unique_ptr<Model> model(new Model());
  model->spec_ = spec;
  model->rng_.Seed(spec.seed);
  NNLAB_ASSIGN_OR_RETURN(
      model->stack_, LayerStack::Build(spec.layers, spec.input_shape, spec.init,
                                       &model->rng_, ""));
  model->stack_.SetRng(&model->rng_);
  model->params_ = model->stack_.Params();
  InitBiases(spec.bias_init, &model->stack_, &model->rng_);
  model->loss_ = MakeLoss(spec.loss);
  NNLAB_RETURN_IF_ERROR(
      CheckModelLoss(model->loss_.get(), model->stack_.final_shape()));
  return model;
}

absl::Status Model::CheckInput(const Tensor& x) const {
  const Shape& want = spec_.input_shape;
  bool ok = x.rank() == static_cast<int>(want.size()) + 1 && x.dim(0) >= 1;
  for (size_t i = 0; ok && i < want.size(); ++i) ok = x.dim(i + 1) == want[i];
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input shape ", ShapeToString(x.shape()),
        " does not match the model's [N, ", ShapeToString(want).substr(1)));
  }
  if (!x.AllFinite()) {
    return absl::InvalidArgumentError("input contains NaN or infinity");
  }
  return absl::OkStatus();
}

const Tensor& Model::Forward(const Tensor& x, Mode mode) {
  return stack_.Forward(x, mode);
}

void Model::Backward(const Tensor& grad_out) {
  stack_.Backward(grad_out, nullptr);
}

void Model::ZeroGrad() {
  for (const Param& p : params_) p.grad->SetZero();
}

std::vector<Param> Model::Params() { return params_; }

std::vector<std::pair<std::string, Tensor*>> Model::Buffers() {
  return stack_.Buffers();
}

int64_t Model::ParameterCount() {
  int64_t n = 0;
  for (const Param& p : Params()) n += p.value->size();
  return n;
}

namespace {

bool IsBiasLike(const std::string& name) {
  return absl::EndsWith(name, ".bias") || absl::EndsWith(name, ".beta");
}

void MeanStd(const Tensor& t, double* mean, double* stddev) {
  const double n = t.size() > 0 ? double(t.size()) : 1.0;
  *mean = t.Sum() / n;
  *stddev = std::sqrt(std::max(0.0, t.SquaredNorm() / n - *mean * *mean));
}

}  // namespace

std::vector<LayerStats> Model::CollectLayerStats(
    const std::vector<Tensor>* weights_before) {
  std::vector<LayerStats> out;
  size_t param_index = 0;
  for (int i = 0; i < stack_.size(); ++i) {
    Layer* layer = stack_.layer(i);
    std::vector<Param> params = layer->Params();
    if (params.empty()) continue;
    LayerStats s;
    s.name = layer->name();
    s.kind = std::string(layer->kind());
    double gb = 0, gw = 0, w = 0, dw = 0, w_before = 0;
    for (const Param& p : params) {
      if (IsBiasLike(p.name)) {
        gb += p.grad->SquaredNorm();
      } else {
        gw += p.grad->SquaredNorm();
        w += p.value->SquaredNorm();
        if (weights_before != nullptr) {
          const Tensor& before = (*weights_before)[param_index];
          dw += p.value->SquaredDistance(before);
          w_before += before.SquaredNorm();
        }
      }
      ++param_index;
    }
    s.grad_bias_norm = std::sqrt(gb);
    s.grad_weight_norm = std::sqrt(gw);
    s.weight_norm = std::sqrt(w);
    s.update_ratio = w_before > 0 ? std::sqrt(dw / w_before) : 0.0;
    // Describe the activation that follows the layer, if there is one.
    int act = i;
    if (i + 1 < stack_.size() &&
        LayerTraitsOf(stack_.layer(i + 1)->kind()).activation) {
      act = i + 1;
    }
    MeanStd(stack_.output(act), &s.activation_mean, &s.activation_std);
    s.saturated_fraction =
        stack_.layer(act)->SaturatedFraction(stack_.output(act));
    if (LayerTraitsOf(layer->kind()).recurrent) {
      s.timestep_grad_norms =
          static_cast<RecurrentLayer*>(layer)->timestep_grad_norms();
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace nnlab

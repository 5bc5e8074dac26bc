// The layer registry and MakeLayer: spec -> validated, initialised layer.
// Each kind's factory lives with its layer; this file only looks the kind
// up, and holds the checks every layer gets.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "core/layers/registry.h"
#include "core/status_macros.h"

namespace nnlab {

const std::vector<RegisteredLayer>& RegisteredLayers() {
  static const auto* layers = [] {
    LayerTraits plain, params, dead, saturating, stochastic, composite,
        recurrent;
    params.has_params = true;
    dead.activation = saturating.activation = true;
    dead.saturation = Saturation::kDead;
    saturating.saturation = Saturation::kSaturated;
    stochastic.stochastic = true;
    composite.composite = true;
    recurrent.has_params = recurrent.recurrent = true;
    return new std::vector<RegisteredLayer>{
        {"dense", NewDense, params},
        {"sigmoid", NewSigmoid, saturating},
        {"tanh", NewTanh, saturating},
        {"relu", NewRelu, dead},
        {"leaky_relu", NewLeakyRelu, dead},
        {"dropout", NewDropout, stochastic},
        {"batch_norm", NewBatchNorm, params},
        {"conv2d", NewConv2D, params},
        {"max_pool2d", NewMaxPool2D, plain},
        {"avg_pool2d", NewAvgPool2D, plain},
        {"global_avg_pool", NewGlobalAvgPool, plain},
        {"flatten", NewFlatten, plain},
        {"residual", NewResidual, composite},
        {"rnn", NewRnn, recurrent},
        {"lstm", NewLstm, recurrent},
        {"time_dense", NewTimeDense, params},
    };
  }();
  return *layers;
}

const RegisteredLayer* FindLayerKind(absl::string_view kind) {
  const std::vector<RegisteredLayer>& layers = RegisteredLayers();
  auto it =
      std::find_if(layers.begin(), layers.end(),
                   [kind](const RegisteredLayer& l) { return l.kind == kind; });
  return it == layers.end() ? nullptr : &*it;
}

LayerTraits LayerTraitsOf(absl::string_view kind) {
  const RegisteredLayer* l = FindLayerKind(kind);
  return l == nullptr ? LayerTraits{} : l->traits;
}

LayerCost Layer::Cost(const Shape& in) const {
  absl::StatusOr<Shape> out = OutputShape(in);
  return {0, out.ok() ? CostElements(*out) : 0};
}

namespace {

// Constructs the layer from its spec, named, without checking shapes.
absl::StatusOr<std::unique_ptr<Layer>> NewNamedLayer(const LayerSpec& spec,
                                                     const std::string& name) {
  const RegisteredLayer* kind = FindLayerKind(spec.kind);
  if (kind == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", name, ": unknown kind \"", spec.kind, "\""));
  }
  auto layer_or = kind->factory(spec);
  if (!layer_or.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", name, ": ", layer_or.status().message()));
  }
  std::unique_ptr<Layer> layer = std::move(layer_or).value();
  layer->set_name(name);
  return layer;
}

// The layer's output shape for `in`, which must not be empty.
absl::StatusOr<Shape> CheckedOutputShape(const Layer& layer,
                                         const LayerSpec& spec,
                                         const Shape& in) {
  auto shape_or = layer.OutputShape(in);
  if (!shape_or.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", layer.name(), " (", spec.kind,
                     "): ", shape_or.status().message()));
  }
  for (int64_t d : *shape_or) {
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", layer.name(), " (", spec.kind,
                       "): output shape ", ShapeToString(*shape_or),
                       " for input ", ShapeToString(in), " is empty"));
    }
  }
  return shape_or;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const LayerSpec& spec,
                                                 const std::string& name,
                                                 const Shape& in,
                                                 InitKind default_init,
                                                 Rng* rng, Shape* out) {
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Layer> layer,
                         NewNamedLayer(spec, name));
  NNLAB_ASSIGN_OR_RETURN(*out, CheckedOutputShape(*layer, spec, in));
  layer->Init(in, spec.has_init ? spec.init : default_init, rng);
  return layer;
}

absl::StatusOr<Shape> LayerOutputShape(const LayerSpec& spec,
                                       const std::string& name,
                                       const Shape& in) {
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Layer> layer,
                         NewNamedLayer(spec, name));
  return CheckedOutputShape(*layer, spec, in);
}

absl::StatusOr<Shape> EstimateLayer(const LayerSpec& spec,
                                    const std::string& name, const Shape& in,
                                    LayerCost* cost) {
  *cost = LayerCost{};
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Layer> layer,
                         NewNamedLayer(spec, name));
  *cost = layer->Cost(in);
  return CheckedOutputShape(*layer, spec, in);
}

}  // namespace nnlab

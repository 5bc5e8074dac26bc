// MakeLayer: spec -> validated, initialised layer. Each kind's factory lives
// with its layer; this file only dispatches on the kind string.
#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "core/layers/layer.h"
#include "core/layers/layer_factories.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

using Factory =
    std::function<absl::StatusOr<std::unique_ptr<Layer>>(const LayerSpec&)>;

const std::map<std::string, Factory>& Factories() {
  static const auto* factories = new std::map<std::string, Factory>{
      {"dense", NewDense},
      {"sigmoid", [](const LayerSpec&) { return NewActivation("sigmoid"); }},
      {"tanh", [](const LayerSpec&) { return NewActivation("tanh"); }},
      {"relu", [](const LayerSpec&) { return NewActivation("relu"); }},
      {"leaky_relu", NewLeakyRelu},
      {"dropout", NewDropout},
      {"batch_norm", NewBatchNorm},
      {"conv2d", NewConv2D},
      {"max_pool2d", NewMaxPool2D},
      {"avg_pool2d", NewAvgPool2D},
      {"global_avg_pool", NewGlobalAvgPool},
      {"flatten", NewFlatten},
      {"residual", NewResidual},
      {"rnn", NewRnn},
      {"lstm", NewLstm},
      {"time_dense", NewTimeDense},
      // Layers of the regularisation/CNN and sequence families register
      // here as they land (see layers.h).
  };
  return *factories;
}

}  // namespace

namespace {

// Constructs the layer and checks it against `in`, without Init.
absl::StatusOr<std::unique_ptr<Layer>> NewCheckedLayer(const LayerSpec& spec,
                                                       const std::string& name,
                                                       const Shape& in,
                                                       Shape* out) {
  const auto& factories = Factories();
  auto it = factories.find(spec.kind);
  if (it == factories.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", name, ": unknown kind \"", spec.kind, "\""));
  }
  auto layer_or = it->second(spec);
  if (!layer_or.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", name, ": ", layer_or.status().message()));
  }
  std::unique_ptr<Layer> layer = std::move(layer_or).value();
  layer->set_name(name);
  auto shape_or = layer->OutputShape(in);
  if (!shape_or.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer ", name, " (", spec.kind, "): ", shape_or.status().message()));
  }
  for (int64_t d : *shape_or) {
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", name, " (", spec.kind, "): output shape ",
                       ShapeToString(*shape_or), " for input ",
                       ShapeToString(in), " is empty"));
    }
  }
  *out = *shape_or;
  return layer;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> MakeLayer(const LayerSpec& spec,
                                                 const std::string& name,
                                                 const Shape& in,
                                                 InitKind default_init,
                                                 Rng* rng, Shape* out) {
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<Layer> layer,
                         NewCheckedLayer(spec, name, in, out));
  layer->Init(in, spec.has_init ? spec.init : default_init, rng);
  return layer;
}

absl::StatusOr<Shape> LayerOutputShape(const LayerSpec& spec,
                                       const std::string& name,
                                       const Shape& in) {
  Shape out;
  NNLAB_RETURN_IF_ERROR(NewCheckedLayer(spec, name, in, &out).status());
  return out;
}

}  // namespace nnlab

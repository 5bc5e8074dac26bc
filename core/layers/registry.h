// The layer registry: every layer kind the core builds, with its factory
// and its traits. The one place that knows layer kinds by name; code that
// needs to know what a kind is asks the registry (or the Layer itself)
// instead of comparing kind strings. Immutable after first use and
// thread-safe.
#ifndef NNLAB_CORE_LAYERS_REGISTRY_H_
#define NNLAB_CORE_LAYERS_REGISTRY_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/layers/layer.h"
#include "core/layers/spec.h"

namespace nnlab {

// Constructs a layer from its spec (layer_factories.h): InvalidArgument
// naming the field for a spec field out of range; shapes are checked later.
using LayerFactory =
    absl::StatusOr<std::unique_ptr<Layer>> (*)(const LayerSpec& spec);

// What an activation's SaturatedFraction counts.
enum class Saturation {
  kNone,       // Not an activation.
  kDead,       // Units that output <= 0 for the whole batch (relu-like).
  kSaturated,  // Units near an asymptote (sigmoid, tanh).
};

struct LayerTraits {
  // Owns trainable parameters of its own at every input (dense, conv2d,
  // batch_norm, rnn, lstm, time_dense).
  bool has_params = false;
  // Holds nested layers (residual): has parameters if they do, or if its
  // shortcut needs a projection.
  bool composite = false;
  // Elementwise nonlinearity (sigmoid, tanh, relu, leaky_relu): its
  // SaturatedFraction describes the units of the layer before it.
  bool activation = false;
  // For an activation, what its SaturatedFraction counts; kNone otherwise.
  Saturation saturation = Saturation::kNone;
  // Runs over a sequence [T, F] carrying state through time (rnn, lstm):
  // a RecurrentLayer (recurrent.h).
  bool recurrent = false;
  // Draws random numbers while training (dropout): train and eval
  // outputs differ, and so do two training passes.
  bool stochastic = false;
};

struct RegisteredLayer {
  absl::string_view kind;  // LayerSpec::kind and Layer::kind().
  LayerFactory factory;
  LayerTraits traits;
};

// Every registered kind, in the order spec.h lists them.
const std::vector<RegisteredLayer>& RegisteredLayers();
// The registered kind `kind`, or nullptr if there is none.
const RegisteredLayer* FindLayerKind(absl::string_view kind);
// The traits of `kind`; all false for an unknown kind.
LayerTraits LayerTraitsOf(absl::string_view kind);

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_REGISTRY_H_

// Weight initialisers (spec.h InitKind).
#ifndef NNLAB_CORE_LAYERS_INIT_H_
#define NNLAB_CORE_LAYERS_INIT_H_

#include <cstdint>

#include "core/layers/spec.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"

namespace nnlab {

// Fills `w` according to `kind` for a layer with the given fan-in/fan-out.
void InitWeights(InitKind kind, int64_t fan_in, int64_t fan_out, Rng* rng,
                 Tensor* w);

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_INIT_H_

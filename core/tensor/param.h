// Param: a named trainable tensor and its gradient, the only view of a
// model's parameters that optimizers, checkpoints and statistics get (they
// never see layer types).
#ifndef NNLAB_CORE_TENSOR_PARAM_H_
#define NNLAB_CORE_TENSOR_PARAM_H_

#include <string>

#include "core/tensor/tensor.h"

namespace nnlab {

// Both tensors are owned by the layer that made the Param and stay at the
// same address for the layer's life; `grad` has `value`'s shape.
struct Param {
  std::string name;  // "<layer>.<param>", e.g. "dense0.weight".
  Tensor* value;
  Tensor* grad;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TENSOR_PARAM_H_

// Reference models of the lecture that the examples, tests and benchmarks
// build in C++ (the server reads the same networks from examples/*.textproto).
#ifndef NNLAB_CORE_ZOO_H_
#define NNLAB_CORE_ZOO_H_

#include "core/spec.h"

namespace nnlab {

// The small residual CNN for Fashion-MNIST ([1, 28, 28] in, 10 classes):
// stem conv 3x3 16 + batch norm + ReLU; three blocks conv-BN-ReLU-conv-BN at
// 16, 32 (stride 2) and 64 (stride 2) channels, each followed by ReLU;
// global average pooling; dense 10. He init, seed 1. With `shortcuts` each
// block is a residual block (x + F(x), 1x1 projections where shapes
// change); without, the same layers form a plain CNN.
ModelSpec FashionResidualCnn(bool shortcuts = true);

}  // namespace nnlab

#endif  // NNLAB_CORE_ZOO_H_

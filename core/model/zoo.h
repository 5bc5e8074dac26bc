// Reference models of the lecture that the examples, tests and benchmarks
// build in C++ (the server reads the same networks from examples/*.textproto).
#ifndef NNLAB_CORE_MODEL_ZOO_H_
#define NNLAB_CORE_MODEL_ZOO_H_

#include <cstdint>
#include <string>

#include "core/layers/spec.h"
#include "core/model/model.h"
#include "core/tensor/tensor.h"

namespace nnlab {

// The small residual CNN for Fashion-MNIST ([1, 28, 28] in, 10 classes):
// stem conv 3x3 16 + batch norm + ReLU; three blocks conv-BN-ReLU-conv-BN at
// 16, 32 (stride 2) and 64 (stride 2) channels, each followed by ReLU;
// global average pooling; dense 10. He init, seed 1. With `shortcuts` each
// block is a residual block (x + F(x), 1x1 projections where shapes
// change); without, the same layers form a plain CNN.
ModelSpec FashionResidualCnn(bool shortcuts = true);

// The adding problem's regressor (Hochreiter & Schmidhuber 1997): a
// recurrent layer of 64 units (`recurrent_kind` "rnn" or "lstm", many-to-
// one) over [length, 2] sequences and a dense output of 1, quadratic loss,
// Glorot init.
ModelSpec AddingProblemModel(const std::string& recurrent_kind, int64_t length,
                             uint64_t seed = 1);

// Mean of (output - y)^2 over a regression model with one output per
// sample, in evaluation mode, 250 samples per forward pass.
// REQUIRES: x [N, ...] matches the model's input; y holds N targets.
double MeanSquaredError(Model* model, const Tensor& x, const Tensor& y);

}  // namespace nnlab

#endif  // NNLAB_CORE_MODEL_ZOO_H_

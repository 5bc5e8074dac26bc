// Plain C++ description of a model: what the wire's ModelSpec carries,
// without protobuf. Built into a model by BuildModel() (model.h), which
// validates it once and names the offending layer on error.
#ifndef NNLAB_CORE_LAYERS_SPEC_H_
#define NNLAB_CORE_LAYERS_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor/tensor.h"

namespace nnlab {

// Weight initialisers. Biases start at zero unless a layer says otherwise.
enum class InitKind {
  kNormal,        // W ~ N(0, 1): the lecture's deep sigmoid experiment.
  kScaledNormal,  // W ~ N(0, 1/sqrt(n_in)) (standard deviation 1/sqrt(n_in)).
  kGlorot,        // Glorot & Bengio 2010, uniform +-sqrt(6/(n_in+n_out)).
  kHe,            // He et al. 2015, N(0, sqrt(2/n_in)).
};

enum class LossKind {
  kSoftmaxCrossEntropy,  // Targets: class indices [N].
  kMse,                  // C = 1/(2N) sum ||y - a||^2; targets like outputs.
  kSigmoidCrossEntropy,  // Binary targets in [0, 1], shape like outputs.
  // Sigmoid cross-entropy against one-hot encoded class indices [N]: every
  // output is an independent sigmoid unit (Nielsen 2015, ch. 3 and 5).
  kSigmoidCrossEntropyClasses,
  // Softmax cross-entropy at every time step: outputs [T, C] per sample,
  // targets [T] class indices (the character model; model/loss.h).
  kSequenceSoftmaxCrossEntropy,
};

// What biases start at.
enum class BiasInit {
  kDefault,  // N(0, 1) for dense layers under InitKind::kNormal, else zero
             // (and the LSTM's forget-gate bias 1).
  kZero,     // Every "*.bias" parameter 0.
  kNormal,   // Every "*.bias" parameter ~ N(0, 1) (Nielsen 2015, ch. 5).
  // Dense layers: b = -W (1/2, ..., 1/2), so z = W (a - 1/2) is 0 where the
  // inputs sit at a sigmoid's midpoint (the exploding-gradient setup:
  // z near 0 keeps sigma'(z) at its largest); other layers as kDefault.
  kCentered,
};

// One layer. `kind` selects the layer; only the fields that kind reads
// matter. Kinds: dense, sigmoid, tanh, relu, leaky_relu, dropout,
// batch_norm, conv2d, max_pool2d, avg_pool2d, global_avg_pool, flatten,
// residual, rnn, lstm, time_dense (dense at every step of a [T, I] sequence:
// the output map y_t = W_s h_t of many-to-many recurrent models).
struct LayerSpec {
  std::string kind;
  std::string name;  // Optional; defaults to "<kind><index>".

  int64_t units = 0;       // dense, time_dense: outputs; rnn/lstm: hidden
                           // size.
  float alpha = 0.01f;     // leaky_relu: negative slope.
  float keep_prob = 0.5f;  // dropout: probability of keeping a unit.
  float momentum = 0.9f;   // batch_norm: running-average momentum.
  float epsilon = 1e-5f;   // batch_norm.
  int64_t filters = 0;     // conv2d: output channels.
  int64_t kernel = 3;      // conv2d / pools: square kernel size.
  int64_t stride = 1;      // conv2d / pools.
  int64_t padding = 0;     // conv2d: zero padding on each side.
  bool return_sequences = false;  // rnn/lstm: output every step (many-to-many)
                                  // instead of the last (many-to-one).
  int64_t bptt_window = 0;        // rnn/lstm: truncated BPTT window (0 = full).
  bool has_init = false;          // Overrides the model's initialiser if set.
  InitKind init = InitKind::kNormal;
  std::vector<LayerSpec> body;  // residual: the layers of F in x + F(x).
};

struct ModelSpec {
  std::string name;
  Shape input_shape;  // Per sample, without the batch dimension.
  std::vector<LayerSpec> layers;
  LossKind loss = LossKind::kSoftmaxCrossEntropy;
  InitKind init = InitKind::kNormal;
  // kZero and kNormal apply to every parameter named "*.bias" (dense, conv,
  // recurrent, residual projections); batch norm's beta is left alone.
  BiasInit bias_init = BiasInit::kDefault;
  uint64_t seed = 1;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_LAYERS_SPEC_H_

// The one place nnlab runs oneDNN's convolution primitives (forward,
// backward-data, backward-weights) for Conv2D (core/layers/conv2d.cc),
// which never sees oneDNN itself.
//
// A OneDnnConv is built once for one shape (batch included) and then run
// every step: it owns its primitives and their reorders to and from
// oneDNN's blocked layouts. The blocked copies and the primitives'
// scratchpad (user-managed: oneDNN allocates none of its own) live in one
// workspace per thread, shared by every OneDnnConv and reused. Every call
// runs on the calling thread alone (the layer splits a batch across
// threads itself), so results are deterministic for a given split.
//
// Tensors are row-major NCHW (x, y), weights [F, C, K, K], bias [F].
// Not thread-safe: one object per thread at a time.
#ifndef NNLAB_CORE_KERNELS_ONEDNN_CONV_H_
#define NNLAB_CORE_KERNELS_ONEDNN_CONV_H_

#include <cstdint>
#include <memory>
#include <vector>

namespace nnlab {

struct ConvGeometry {
  int64_t n, c, h, w;  // Input batch, channels, height, width.
  int64_t f, k, s, p;  // Filters, kernel size, stride, padding.
  int64_t ho, wo;      // Output height and width.
};

class OneDnnConv {
 public:
  // Null when oneDNN has no implementation for this geometry (the caller
  // falls back to its own path).
  static std::unique_ptr<OneDnnConv> Create(const ConvGeometry& g);
  ~OneDnnConv();

  // y = conv(x, w) + b.
  void Forward(const float* x, const float* w, const float* b, float* y);
  // dx = the input gradient for dy (overwrites dx).
  void BackwardData(const float* dy, const float* w, float* dx);
  // dw, db = the weight and bias gradients of this batch (overwritten).
  void BackwardWeights(const float* x, const float* dy, float* dw, float* db);
  // Both: dw, db and, unless dx is null, dx; the same results as the two
  // calls above, with dy converted to oneDNN's layout once.
  void Backward(const float* x, const float* dy, const float* w, float* dx,
                float* dw, float* db);

  // Bytes of the calling thread's workspace a call needs (blocked copies
  // and scratchpad).
  int64_t workspace_bytes() const;
  // True when some of the three primitives runs Winograd's algorithm.
  bool winograd() const;

 private:
  struct Impl;
  explicit OneDnnConv(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// One convolution of a OneDnnConvChain. Slots are the chain's
// intermediate results, kept in oneDNN's blocked layouts.
struct ChainConv {
  enum class Post { kRelu, kSum };
  ConvGeometry g;  // g.n is the chain's batch.
  int src = -1;    // Slot read; -1 reads the chain's input.
  int dst = 0;     // Slot written.
  // Applied in order after the bias: kRelu max(0, v); kSum v + what dst
  // held (written by an earlier convolution).
  std::vector<Post> post;
};

// An evaluation-only sequence of convolutions (core/layers/conv_chain.h
// builds it from a network's leading layers). Intermediate results stay
// in oneDNN's blocked layouts in the calling thread's workspace, and each
// convolution applies its ReLU and shortcut sum as it writes, so nothing
// else passes over memory between two convolutions. Built for one batch
// size; runs on the calling thread alone. Not thread-safe.
class OneDnnConvChain {
 public:
  // Null where oneDNN has no implementation for some step (the caller then
  // runs the layers one by one). REQUIRES: every slot is written before it
  // is read (a kSum step's dst included), and out_slot is written.
  static std::unique_ptr<OneDnnConvChain> Create(
      const std::vector<ChainConv>& convs, int out_slot);
  ~OneDnnConvChain();

  // x: the input batch, plain NCHW; weights[i], biases[i]: convolution i's
  // [F, C, K, K] and [F]; y: out_slot's final value, plain NCHW.
  void Run(const float* x, const float* const* weights,
           const float* const* biases, float* y);

 private:
  struct Impl;
  explicit OneDnnConvChain(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Which path Conv2D uses: kIm2col (im2col + GEMM), kOneDnn (oneDNN's
// direct convolution), kWinograd (oneDNN's Winograd convolution for each
// primitive that has one, for channel counts that are multiples of 16;
// the direct one for the rest). kAuto is
// kWinograd, falling back to im2col for a geometry oneDNN refuses. The
// starting value comes from NNLAB_CONV (`auto`, `im2col`, `onednn`,
// `winograd`; unset or anything else: auto), read once. Read when a
// OneDnnConv is created.
enum class ConvPath { kAuto, kIm2col, kOneDnn, kWinograd };
ConvPath SetConvPath(ConvPath path);
ConvPath CurrentConvPath();

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_ONEDNN_CONV_H_

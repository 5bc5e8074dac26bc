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

 private:
  struct Impl;
  explicit OneDnnConv(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Which path Conv2D uses. kAuto picks per shape; the others force one. The
// starting value comes from NNLAB_CONV (`auto`, `im2col`, `onednn`; unset
// or anything else: auto), read once.
enum class ConvPath { kAuto, kIm2col, kOneDnn };
ConvPath SetConvPath(ConvPath path);
ConvPath CurrentConvPath();

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_ONEDNN_CONV_H_

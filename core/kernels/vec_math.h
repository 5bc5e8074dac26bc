// Vectorised elementwise kernels of the core: e^x, sigmoid, tanh, Box-Muller
// normals, the Adam update, batch normalization's passes over a channel,
// and the finiteness check and squared norms of whole tensors.
// libm's expf/tanhf/logf/cosf are scalar calls per element; these run 16
// lanes at a time with AVX-512, 8 with AVX2 and FMA, when the CPU has them
// (checked once, at the first call), 4-lane SSE2 otherwise.
//
// Accuracy (checked against libm over their whole useful range in
// tests/core/vec_math_test.cc): e^x relative error < 1e-6 (Cephes expf
// polynomial, x clamped to [-87, 88.7], inf above), sigmoid 1/(1 + e^-x)
// < 1e-6, tanh < 2e-6 (Cephes tanhf: an odd polynomial below |x| = 0.625,
// 1 - 2/(e^2|x| + 1) with the sign of x above). NaN in, NaN out.
//
// Determinism: the AVX2 and AVX-512 paths round a*b+c once (FMA), the SSE2
// path twice, and the paths' sums add in different orders, so they may
// differ in the last bit; a process always takes the same path, so a
// seeded run repeats exactly on one machine.
//
// Arrays: `in` may equal `out` (in place); otherwise they must not overlap.
// Thread-safe (no state besides the one-time CPU check).
#ifndef NNLAB_CORE_KERNELS_VEC_MATH_H_
#define NNLAB_CORE_KERNELS_VEC_MATH_H_

#include <cstdint>

namespace nnlab {

void VecExp(const float* in, float* out, int64_t n);
void VecSigmoid(const float* in, float* out, int64_t n);
void VecTanh(const float* in, float* out, int64_t n);

// Box-Muller on n pairs of uniforms: u1 in (0, 1], u2 in [0, 1):
// r = sqrt(-2 ln u1); out_cos[i] = mean + stddev r cos(2 pi u2),
// out_sin[i] = mean + stddev r sin(2 pi u2) (two independent normals).
// Relative error of r cos / r sin < 1e-6 besides the rounding of the
// inputs. REQUIRES: no output overlaps an input.
void VecBoxMuller(const float* u1, const float* u2, int64_t n, float mean,
                  float stddev, float* out_cos, float* out_sin);

// One Adam update (Kingma & Ba 2015) over n weights, in the form of
// core/optim/adam.cc: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= step_size m / (sqrt(v) inv_sqrt_bc2 + eps). REQUIRES: the arrays do
// not overlap.
struct AdamCoefficients {
  float b1, one_minus_b1, b2, one_minus_b2, step_size, inv_sqrt_bc2, eps;
};
void VecAdamUpdate(const AdamCoefficients& c, const float* g, float* w,
                   float* m, float* v, int64_t n);

// Batch normalization over one channel of an [N, C, S] tensor
// (core/layers/batch_norm.cc): its N rows of S values, the start of each
// `stride` floats after the last. Sums run per row in float and over rows
// in double; xhat = (x - mu) * inv_std is recomputed wherever it is needed
// rather than stored. In-place calls (y == x, dx == dy) are allowed.
struct NormChannel {
  int64_t rows, stride, len;
};
// mean and (biased) variance of the channel's values.
void VecNormStats(const float* x, NormChannel ch, double* mean, double* var);
// y = gamma * xhat + beta.
void VecNormApply(const float* x, NormChannel ch, float mu, float inv_std,
                  float gamma, float beta, float* y);
// sum dy and sum dy * xhat.
void VecNormGradSums(const float* dy, const float* x, NormChannel ch, float mu,
                     float inv_std, double* sum_dy, double* sum_dy_xhat);
// dx = scale * (dy - mean_dy - xhat * mean_dy_xhat).
void VecNormGradInput(const float* dy, const float* x, NormChannel ch, float mu,
                      float inv_std, float scale, float mean_dy,
                      float mean_dy_xhat, float* dx);

// Reductions over a parameter or input tensor (core/tensor/tensor.h):
// whether no value is infinite or NaN, sum x^2 and sum (x - y)^2, summed
// in double. The sums' order depends on the vector width, so the paths
// may differ in the last bits.
bool VecAllFinite(const float* x, int64_t n);
double VecSquaredNorm(const float* x, int64_t n);
double VecSquaredDistance(const float* x, const float* y, int64_t n);

// out[i] = in[i] / 255 (8-bit pixels to [0, 1]), correctly rounded: the
// same bits on every path. REQUIRES: the arrays do not overlap.
void VecBytesToUnit(const uint8_t* in, float* out, int64_t n);

// The kernels of one instruction set; VecExp etc. call the best one the
// CPU runs. Exposed so tests can check every path the CPU supports.
struct VecKernels {
  const char* name;
  void (*exp)(const float*, float*, int64_t);
  void (*sigmoid)(const float*, float*, int64_t);
  void (*tanh)(const float*, float*, int64_t);
  void (*box_muller)(const float*, const float*, int64_t, float, float, float*,
                     float*);
  void (*adam)(const AdamCoefficients&, const float*, float*, float*, float*,
               int64_t);
  void (*norm_stats)(const float*, NormChannel, double*, double*);
  void (*norm_apply)(const float*, NormChannel, float, float, float, float,
                     float*);
  void (*norm_grad_sums)(const float*, const float*, NormChannel, float, float,
                         double*, double*);
  void (*norm_grad_input)(const float*, const float*, NormChannel, float, float,
                          float, float, float, float*);
  bool (*all_finite)(const float*, int64_t);
  double (*squared_norm)(const float*, int64_t);
  double (*squared_distance)(const float*, const float*, int64_t);
  void (*bytes_to_unit)(const uint8_t*, float*, int64_t);
};
// The portable 4-lane kernels (SSE2 on x86-64, NEON on arm64).
const VecKernels& PortableVecKernels();
// The AVX2+FMA kernels, or nullptr if this CPU or build lacks them (or
// NNLAB_MAX_ISA caps them, isa.h).
const VecKernels* Avx2VecKernels();
// The AVX-512 kernels (16 lanes), likewise.
const VecKernels* Avx512VecKernels();
// The kernels VecExp etc. use.
const VecKernels& ActiveVecKernels();

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_VEC_MATH_H_

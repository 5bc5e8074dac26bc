#include "core/kernels/vec_math.h"

#include <cstdint>

#include "core/kernels/isa.h"
#include "core/kernels/simd_target.h"
#include "core/kernels/vec_sum.h"

namespace nnlab {
namespace vec_portable {

typedef float V __attribute__((vector_size(16)));
typedef int32_t I __attribute__((vector_size(16)));
constexpr int kLanes = 4;

inline V Sqrt(V x) {
#if defined(__SSE2__)
  return __builtin_ia32_sqrtps(x);
#else
  for (int j = 0; j < kLanes; ++j) x[j] = __builtin_sqrtf(x[j]);
  return x;
#endif
}

#include "core/kernels/vec_math_impl.inc"

}  // namespace vec_portable

#if defined(__x86_64__) && defined(__GNUC__)
#define NNLAB_HAVE_SIMD_KERNELS 1
// Everything in this namespace is compiled for AVX2 and FMA; it runs only
// after the CPU check in Avx2VecKernels().
NNLAB_BEGIN_AVX2_REGION
namespace vec_avx2 {

typedef float V __attribute__((vector_size(32)));
typedef int32_t I __attribute__((vector_size(32)));
constexpr int kLanes = 8;

inline V Sqrt(V x) { return __builtin_ia32_sqrtps256(x); }

#include "core/kernels/vec_math_impl.inc"

}  // namespace vec_avx2
NNLAB_END_AVX2_REGION

// The same for AVX-512 (16 lanes); runs only after the check in
// Avx512VecKernels().
NNLAB_BEGIN_AVX512_REGION
namespace vec_avx512 {

typedef float V __attribute__((vector_size(64)));
typedef int32_t I __attribute__((vector_size(64)));
constexpr int kLanes = 16;

// _mm512_sqrt_ps, without <immintrin.h> (GCC 12's header warns of an
// uninitialised operand under -Werror): rounding as the MXCSR says (4:
// _MM_FROUND_CUR_DIRECTION); GCC's builtin also takes a mask (all lanes)
// and a pass-through operand (unused).
inline V Sqrt(V x) {
#if defined(__clang__)
  return __builtin_ia32_sqrtps512(x, 4);
#else
  return __builtin_ia32_sqrtps512_mask(x, x, -1, 4);
#endif
}

#include "core/kernels/vec_math_impl.inc"

}  // namespace vec_avx512
NNLAB_END_AVX512_REGION
#endif

// The table of one namespace's kernels, named without the "vec_".
#define NNLAB_VEC_KERNELS(ns)                                                \
  VecKernels {                                                               \
    &#ns[4], ns::ExpArray, ns::SigmoidArray, ns::TanhArray,                  \
        ns::BoxMullerArray, ns::AdamArray, ns::NormStats, ns::NormApply,     \
        ns::NormGradSums, ns::NormGradInput, ns::AllFinite, ns::SquaredNorm, \
        ns::SquaredDistance, ns::BytesToUnit                                 \
  }

const VecKernels& PortableVecKernels() {
  static const VecKernels k = NNLAB_VEC_KERNELS(vec_portable);
  return k;
}

const VecKernels* Avx2VecKernels() {
#ifdef NNLAB_HAVE_SIMD_KERNELS
  static const VecKernels k = NNLAB_VEC_KERNELS(vec_avx2);
  return IsaAllowed(Isa::kAvx2) ? &k : nullptr;
#else
  return nullptr;
#endif
}

const VecKernels* Avx512VecKernels() {
#ifdef NNLAB_HAVE_SIMD_KERNELS
  static const VecKernels k = [] {
    VecKernels t = NNLAB_VEC_KERNELS(vec_avx512);
    // Adam's square root and division ran at half the speed on 16 lanes
    // as on 8 here (bench/kernels_bench BM_OptimizerStep/6, AMD EPYC):
    // AVX2's.
    t.adam = vec_avx2::AdamArray;
    return t;
  }();
  return IsaAllowed(Isa::kAvx512) ? &k : nullptr;
#else
  return nullptr;
#endif
}

#undef NNLAB_VEC_KERNELS

const VecKernels& ActiveVecKernels() {
  static const VecKernels& k =
      Avx512VecKernels() != nullptr ? *Avx512VecKernels()
      : Avx2VecKernels() != nullptr ? *Avx2VecKernels()
                                    : PortableVecKernels();
  return k;
}

void VecExp(const float* in, float* out, int64_t n) {
  ActiveVecKernels().exp(in, out, n);
}
void VecSigmoid(const float* in, float* out, int64_t n) {
  ActiveVecKernels().sigmoid(in, out, n);
}
void VecTanh(const float* in, float* out, int64_t n) {
  ActiveVecKernels().tanh(in, out, n);
}
void VecBoxMuller(const float* u1, const float* u2, int64_t n, float mean,
                  float stddev, float* out_cos, float* out_sin) {
  ActiveVecKernels().box_muller(u1, u2, n, mean, stddev, out_cos, out_sin);
}
void VecAdamUpdate(const AdamCoefficients& c, const float* g, float* w,
                   float* m, float* v, int64_t n) {
  ActiveVecKernels().adam(c, g, w, m, v, n);
}

void VecNormStats(const float* x, NormChannel ch, double* mean, double* var) {
  ActiveVecKernels().norm_stats(x, ch, mean, var);
}
void VecNormApply(const float* x, NormChannel ch, float mu, float inv_std,
                  float gamma, float beta, float* y) {
  ActiveVecKernels().norm_apply(x, ch, mu, inv_std, gamma, beta, y);
}
void VecNormGradSums(const float* dy, const float* x, NormChannel ch, float mu,
                     float inv_std, double* sum_dy, double* sum_dy_xhat) {
  ActiveVecKernels().norm_grad_sums(dy, x, ch, mu, inv_std, sum_dy,
                                    sum_dy_xhat);
}
void VecNormGradInput(const float* dy, const float* x, NormChannel ch, float mu,
                      float inv_std, float scale, float mean_dy,
                      float mean_dy_xhat, float* dx) {
  ActiveVecKernels().norm_grad_input(dy, x, ch, mu, inv_std, scale, mean_dy,
                                     mean_dy_xhat, dx);
}

bool VecAllFinite(const float* x, int64_t n) {
  return ActiveVecKernels().all_finite(x, n);
}
double VecSquaredNorm(const float* x, int64_t n) {
  return ActiveVecKernels().squared_norm(x, n);
}
double VecSquaredDistance(const float* x, const float* y, int64_t n) {
  return ActiveVecKernels().squared_distance(x, y, n);
}
void VecBytesToUnit(const uint8_t* in, float* out, int64_t n) {
  ActiveVecKernels().bytes_to_unit(in, out, n);
}

}  // namespace nnlab

// The instruction sets nnlab's kernels may use: the best the CPU has, or
// less when the environment variable NNLAB_MAX_ISA caps it (`baseline`,
// `avx2` or `avx512`; unset, empty or `native`: no cap), read once, at
// the first call. The cap reaches every kernel path nnlab chooses at run
// time: its own AVX2 and AVX-512 regions (core/kernels/simd_target.h:
// vec_math on both, small_gemm on AVX2) and oneDNN (dnnl_set_max_cpu_isa, set
// before its first kernel is generated). OpenBLAS picks its kernels when it is
// loaded, from its own OPENBLAS_CORETYPE (e.g. Prescott, Haswell, SkylakeX);
// the ISA tests set both.
//
// Results on different ISAs may differ in the last bits (FMA rounds once,
// wider vectors sum in another order); each is deterministic.
// Thread-safe.
#ifndef NNLAB_CORE_KERNELS_ISA_H_
#define NNLAB_CORE_KERNELS_ISA_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nnlab {

// Ordered: each level includes the ones below it.
enum class Isa {
  kBaseline,  // x86-64 (SSE2); oneDNN at its lowest JIT level, SSE4.1.
  kAvx2,      // AVX2 + FMA.
  kAvx512,    // AVX-512 F/CD/BW/DQ/VL (oneDNN's avx512_core).
};

// The best level this CPU runs.
Isa CpuIsa();
// The level kernels use: min(CpuIsa(), the NNLAB_MAX_ISA cap).
Isa MaxIsa();
// True when kernels of `isa` may run: isa <= MaxIsa().
bool IsaAllowed(Isa isa);

// "baseline", "avx2", "avx512".
absl::string_view IsaName(Isa isa);
// The inverse of IsaName; InvalidArgument for anything else.
absl::StatusOr<Isa> ParseIsa(absl::string_view name);

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_ISA_H_

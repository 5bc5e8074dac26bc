// Compiles a region of a file for AVX2 + FMA (or for AVX-512 F/CD/BW/DQ/VL,
// Isa::kAvx512 of isa.h) while the rest of the core stays baseline x86-64;
// code in the region runs only after a runtime CPU check. GCC spells this
// "#pragma GCC target", clang "#pragma clang attribute" (clang ignores the GCC
// form).
#ifndef NNLAB_CORE_KERNELS_SIMD_TARGET_H_
#define NNLAB_CORE_KERNELS_SIMD_TARGET_H_

// clang-format off
// (_Pragma takes one string literal: the line may not be split.)
#if defined(__clang__)
#define NNLAB_BEGIN_AVX2_REGION _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
#define NNLAB_END_AVX2_REGION _Pragma("clang attribute pop")
#define NNLAB_BEGIN_AVX512_REGION _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,avx512f,avx512cd,avx512bw,avx512dq,avx512vl\"))), apply_to = function)")
#define NNLAB_END_AVX512_REGION _Pragma("clang attribute pop")
#else
#define NNLAB_BEGIN_AVX2_REGION _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define NNLAB_END_AVX2_REGION _Pragma("GCC pop_options")
#define NNLAB_BEGIN_AVX512_REGION _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,avx512f,avx512cd,avx512bw,avx512dq,avx512vl\")")
#define NNLAB_END_AVX512_REGION _Pragma("GCC pop_options")
#endif
// clang-format on

#endif  // NNLAB_CORE_KERNELS_SIMD_TARGET_H_

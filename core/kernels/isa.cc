#include "core/kernels/isa.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace nnlab {
namespace {

Isa DetectCpuIsa() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return Isa::kAvx2;
  }
#endif
  return Isa::kBaseline;
}

// A bad value is a mistake in a test or benchmark set-up, not input to
// recover from: say so once and run uncapped.
Isa CapFromEnv(Isa cpu) {
  const char* v = std::getenv("NNLAB_MAX_ISA");
  if (v == nullptr || *v == '\0' || absl::string_view(v) == "native") {
    return cpu;
  }
  absl::StatusOr<Isa> cap = ParseIsa(v);
  if (!cap.ok()) {
    std::fprintf(stderr, "nnlab: ignoring NNLAB_MAX_ISA: %s\n",
                 cap.status().ToString().c_str());
    return cpu;
  }
  return *cap < cpu ? *cap : cpu;
}

}  // namespace

Isa CpuIsa() {
  static const Isa isa = DetectCpuIsa();
  return isa;
}

Isa MaxIsa() {
  static const Isa isa = CapFromEnv(CpuIsa());
  return isa;
}

bool IsaAllowed(Isa isa) { return isa <= MaxIsa(); }

absl::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kBaseline:
      return "baseline";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "unknown";
}

absl::StatusOr<Isa> ParseIsa(absl::string_view name) {
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (name == IsaName(isa)) return isa;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown ISA \"", name,
                   "\" (expected baseline, avx2, avx512 or native)"));
}

}  // namespace nnlab

// NNLAB_MAX_ISA (core/kernels/isa.h): the cap reaches nnlab's own kernels
// and oneDNN's. tests/CMakeLists.txt runs this binary (and the other kernel
// tests) once per level with NNLAB_MAX_ISA set; run plainly, it checks the
// uncapped defaults.
#include "core/kernels/isa.h"

#include <cstdlib>
#include <string>

#include "core/kernels/blas.h"
#include "core/kernels/vec_math.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

TEST(IsaTest, NamesRoundTripAndBadNamesAreRefused) {
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    absl::StatusOr<Isa> parsed = ParseIsa(IsaName(isa));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, isa);
  }
  EXPECT_EQ(ParseIsa("sse9").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseIsa("").status().code(), absl::StatusCode::kInvalidArgument);
}

// The level asked for, clamped to the CPU's; the CPU's when unset.
Isa ExpectedMaxIsa() {
  const char* v = std::getenv("NNLAB_MAX_ISA");
  if (v == nullptr || *v == '\0' || std::string(v) == "native") {
    return CpuIsa();
  }
  absl::StatusOr<Isa> cap = ParseIsa(v);
  if (!cap.ok()) return CpuIsa();
  return *cap < CpuIsa() ? *cap : CpuIsa();
}

TEST(IsaTest, CapReachesEveryKernelPath) {
  const char* v = std::getenv("NNLAB_MAX_ISA");
  if (v != nullptr && ParseIsa(v).ok() && *ParseIsa(v) > CpuIsa()) {
    GTEST_SKIP() << "this CPU (" << IsaName(CpuIsa()) << ") lacks " << v;
  }
  const Isa max = ExpectedMaxIsa();
  EXPECT_EQ(MaxIsa(), max);
  std::printf("CPU %s, kernels capped at %s, oneDNN runs %s\n",
              std::string(IsaName(CpuIsa())).c_str(),
              std::string(IsaName(MaxIsa())).c_str(),
              std::string(IsaName(OneDnnIsa())).c_str());
#if defined(__x86_64__)
  EXPECT_EQ(std::string(ActiveVecKernels().name), max >= Isa::kAvx512 ? "avx512"
                                                  : max >= Isa::kAvx2
                                                      ? "avx2"
                                                      : "portable");
  EXPECT_EQ(Avx2VecKernels() != nullptr, max >= Isa::kAvx2);
  EXPECT_EQ(Avx512VecKernels() != nullptr, max >= Isa::kAvx512);
  // oneDNN runs exactly the capped level (uncapped: the CPU's own).
  EXPECT_EQ(OneDnnIsa(), max);
#endif
}

}  // namespace
}  // namespace nnlab

// Splitting one layer's batch across the BLAS thread budget, for layers
// whose products are too small for OpenBLAS to split (convolutions).
//
// The helper threads block on a condition variable between calls, so they
// take no CPU while OpenBLAS's own threads run; a layer uses them only
// around single-threaded products. Internal to core.
#ifndef NNLAB_CORE_KERNELS_PARALLEL_H_
#define NNLAB_CORE_KERNELS_PARALLEL_H_

#include "absl/functional/function_ref.h"

namespace nnlab {

// Runs fn(part) for every part in [0, parts): part 0 on the calling
// thread, the others on persistent helper threads (started on first use,
// never freed), and returns when all are done. Thread-safe: a call made
// while another is running runs its parts one after another on the
// caller. No allocation once the helpers exist. REQUIRES: parts >= 1.
void ParallelFor(int parts, absl::FunctionRef<void(int)> fn);

// True on a thread while it runs a part of a ParallelFor with more than one
// part (the caller's part 0 included). Gemm then keeps its products on that
// thread: the parts already use the thread budget.
bool InParallelPart();

}  // namespace nnlab

#endif  // NNLAB_CORE_KERNELS_PARALLEL_H_

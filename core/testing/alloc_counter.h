// Counts the process's C++ heap allocations, for tests and benchmarks that
// check a warm step allocates nothing (or a fixed number of times).
//
// alloc_counter.cc replaces the global operator new/delete. A program may
// replace them only once, so link it (the CMake object library
// `nnlab_alloc_counter`) into test and benchmark binaries only, never into
// nnlab_core, nnlabd or the CLI, and never define another replacement in
// the same binary. Counts calls of operator new / new[] from every thread
// (malloc and aligned_alloc called directly are not counted).
#ifndef NNLAB_CORE_TESTING_ALLOC_COUNTER_H_
#define NNLAB_CORE_TESTING_ALLOC_COUNTER_H_

#include <cstdint>

namespace nnlab {

// Calls of operator new / new[] since the program started.
int64_t AllocationCount();

}  // namespace nnlab

#endif  // NNLAB_CORE_TESTING_ALLOC_COUNTER_H_

// Error-propagation helpers. Debian's Abseil 20220623 ships neither
// RETURN_IF_ERROR nor ASSIGN_OR_RETURN, so nnlab defines its own, once, here.
#ifndef NNLAB_CORE_STATUS_MACROS_H_
#define NNLAB_CORE_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NNLAB_STATUS_CONCAT_INNER_(a, b) a##b
#define NNLAB_STATUS_CONCAT_(a, b) NNLAB_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` yields a non-OK absl::Status.
#define NNLAB_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status nnlab_status_ = (expr);         \
    if (!nnlab_status_.ok()) return nnlab_status_; \
  } while (0)

// `NNLAB_ASSIGN_OR_RETURN(auto x, MakeX());` assigns the value of an
// absl::StatusOr or returns its error.
#define NNLAB_ASSIGN_OR_RETURN(lhs, expr)                                      \
  NNLAB_ASSIGN_OR_RETURN_IMPL_(NNLAB_STATUS_CONCAT_(nnlab_or_, __LINE__), lhs, \
                               expr)
#define NNLAB_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

// Aborts loudly when an internal invariant is broken. Never used for
// conditions that client input can trigger: those return a Status.
#define NNLAB_CHECK(cond)                                               \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: NNLAB_CHECK failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                    \
      std::abort();                                                     \
    }                                                                   \
  } while (0)

#endif  // NNLAB_CORE_STATUS_MACROS_H_

// A fresh directory for server unit tests that need no gRPC (the service
// tests' TempDir lives in server_test_util.h, which pulls in gRPC).
#ifndef NNLAB_TESTS_SERVER_SCRATCH_DIR_H_
#define NNLAB_TESTS_SERVER_SCRATCH_DIR_H_

#include <stdlib.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace nnlab::testing {

// A directory under $TMPDIR, removed with its contents by the destructor.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl = absl::StrCat(base ? base : "/tmp", "/nnlab-unit-XXXXXX");
    const char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~ScratchDir() {
    const std::string cmd = absl::StrCat("rm -rf '", path_, "'");
    EXPECT_EQ(system(cmd.c_str()), 0);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const {
    return absl::StrCat(path_, "/", name);
  }

 private:
  std::string path_;
};

}  // namespace nnlab::testing

#endif  // NNLAB_TESTS_SERVER_SCRATCH_DIR_H_

// Command-line handling shared by the example programs: Abseil flags, so
// every example answers --help (and --helpfull) with its flags and their
// defaults, and rejects unknown flags and malformed values.
#ifndef NNLAB_EXAMPLES_EXAMPLE_FLAGS_H_
#define NNLAB_EXAMPLES_EXAMPLE_FLAGS_H_

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/string_view.h"

namespace nnlab {

// Parses the flags (exiting with status 1 on a bad flag, as Abseil does,
// and after --help); a stray positional argument exits with status 2.
inline void ParseExampleFlags(int argc, char** argv, absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", rest[0],
                 rest[1]);
    std::exit(2);
  }
}

}  // namespace nnlab

#endif  // NNLAB_EXAMPLES_EXAMPLE_FLAGS_H_

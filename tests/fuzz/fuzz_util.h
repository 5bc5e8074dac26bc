// Helpers shared by the fuzz targets and the corpus generator.
#ifndef NNLAB_TESTS_FUZZ_FUZZ_UTIL_H_
#define NNLAB_TESTS_FUZZ_FUZZ_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/convert.h"

namespace nnlab::fuzz {

// Silences nnlabd's info logs and protobuf's own logging (parse errors of
// fuzz inputs). Server errors still go to stderr (run.sh closes it).
void QuietLogs();

// A fresh directory, on tmpfs (/dev/shm) when there is one so the
// server's fsyncs cost nothing; removed when the process exits normally.
std::string MakeTempDir(const std::string& tag);

// Writes `contents` to `path`; aborts on failure (harness setup only).
void WriteFileOrDie(const std::string& path, const std::string& contents);
// Reads a whole file; aborts on failure (harness setup only).
std::string ReadFileOrDie(const std::string& path);
// Removes everything inside `dir` (not `dir` itself).
void ClearDir(const std::string& dir);

// The server's default limits with smaller models and tensors: a legal
// 50M-parameter model takes seconds to initialise under ASan, which
// libFuzzer reports as a timeout. The limits themselves are tested at
// their real values by tests/server/bad_input_test.
server::Limits FuzzLimits();

// Small valid model specs (ModelSpec text format) the targets share:
// an MLP on [4], a CNN on [1, 6, 6] with batch norm and dropout, a
// recurrent many-to-many model on [5, 3] and an MLP on MNIST's [784].
extern const char kMlpSpec[];
extern const char kCnnSpec[];
extern const char kRnnSpec[];
extern const char kMnistSpec[];
// A small GAN pair (GanSpec text format).
extern const char kGanSpec[];

// fuzz_requests' first input byte (mod kNumRpcs): which unary RPC the rest
// of the input is a request for. make_corpus writes its seeds with it.
enum Rpc : uint8_t {
  kCreateModel,
  kGetModel,
  kListModels,
  kDeleteModel,
  kExportModel,
  kImportModel,
  kStartJob,
  kGetJob,
  kListJobs,
  kCancelJob,
  kPauseJob,
  kResumeJob,
  kTrainStep,
  kListDatasets,
  kDeleteDataset,
  kInfer,
  kSample,
  kSampleText,
  kNumRpcs
};

// Paths of the model specs examples/*.textproto (not the sweep specs,
// sweep_*.textproto), sorted.
std::vector<std::string> ExampleSpecs(const std::string& source_dir);

}  // namespace nnlab::fuzz

#endif  // NNLAB_TESTS_FUZZ_FUZZ_UTIL_H_

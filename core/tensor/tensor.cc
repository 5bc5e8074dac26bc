#include "core/tensor/tensor.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "absl/strings/str_join.h"
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

namespace {

// sum_{i < n} term(i) in double, in eight independent partial sums: the
// compiler vectorises them (a single running sum is a serial chain it may
// not reorder), and the order of the adds, so the result, does not depend
// on the thread count: runs stay deterministic.
template <typename Term>
double SumInDouble(int64_t n, Term term) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += term(i + j);
  }
  double s = 0;
  for (; i < n; ++i) s += term(i);
  for (int j = 0; j < 8; ++j) s += acc[j];
  return s;
}

}  // namespace

double Tensor::SquaredNorm() const {
  const float* x = data_;
  return SumInDouble(size_, [x](int64_t i) { return double(x[i]) * x[i]; });
}

double Tensor::Sum() const {
  const float* x = data_;
  return SumInDouble(size_, [x](int64_t i) { return double(x[i]); });
}

double Tensor::SquaredDistance(const Tensor& other) const {
  assert(other.size_ == size_);
  const float* x = data_;
  const float* y = other.data_;
  return SumInDouble(size_, [x, y](int64_t i) {
    const double d = double(x[i]) - y[i];
    return d * d;
  });
}

double Tensor::Norm() const { return std::sqrt(SquaredNorm()); }

bool Tensor::AllFinite() const {
  // Branch-free blocks (vectorised), checked between blocks: a model input
  // is checked every step, so this must stream at memory speed.
  constexpr int64_t kBlock = 1024;
  const float* x = data_;
  for (int64_t start = 0; start < size_; start += kBlock) {
    const int64_t end = std::min(size_, start + kBlock);
    bool finite = true;
    // |x| <= FLT_MAX is false exactly for infinities and NaN.
    for (int64_t i = start; i < end; ++i) {
      finite &= std::fabs(x[i]) <= std::numeric_limits<float>::max();
    }
    if (!finite) return false;
  }
  return true;
}

}  // namespace nnlab

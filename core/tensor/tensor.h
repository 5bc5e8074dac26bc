// Tensor: a float32, row-major array with a shape, owning its buffer or
// viewing someone else's.
//
// There are no hidden copies: Tensor is move-only, and Clone() is explicit.
// Resize() keeps the allocation when it is large enough, so buffers that are
// resized to the same shape every step allocate only on the first one.
// Not thread-safe; a Tensor belongs to one thread at a time.
#ifndef NNLAB_CORE_TENSOR_TENSOR_H_
#define NNLAB_CORE_TENSOR_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"

namespace nnlab {

// Dimensions, outermost first. Inline storage: no heap for rank <= 4.
using Shape = absl::InlinedVector<int64_t, 4>;

// Number of elements of `shape` (1 for rank 0).
int64_t NumElements(const Shape& shape);
// "[2, 3, 4]".
std::string ShapeToString(const Shape& shape);

class Tensor {
 public:
  // An empty tensor of shape [0].
  Tensor();
  // An owned tensor of `shape`, zero-filled.
  explicit Tensor(const Shape& shape);
  // A non-owning view of `size(shape)` floats at `data`; the caller keeps
  // `data` alive for the view's lifetime.
  static Tensor View(float* data, const Shape& shape);

  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // A deep, owned copy.
  Tensor Clone() const;
  // Copies shape and contents of `other` into this owned tensor, reusing
  // the allocation. REQUIRES: this tensor is not a view.
  void CopyFrom(const Tensor& other);

  // Sets the shape. Contents are unspecified afterwards unless the element
  // count is unchanged (then they are kept). Owned tensors grow their buffer
  // if needed; REQUIRES for views: NumElements(shape) <= the viewed size.
  void Resize(const Shape& shape);
  void SetZero();
  void Fill(float value);

  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t size() const { return size_; }
  // Rows and columns of the tensor viewed as a matrix [dim(0), rest].
  int64_t rows() const { return shape_.empty() ? 1 : shape_[0]; }
  int64_t cols() const { return rows() == 0 ? 0 : size_ / rows(); }
  bool is_view() const { return view_; }

  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }

  // Euclidean (Frobenius) norm, accumulated in double.
  double Norm() const;
  // Sum of squares, accumulated in double.
  double SquaredNorm() const;
  // Sum of the elements, accumulated in double.
  double Sum() const;
  // sum_i (this[i] - other[i])^2, accumulated in double. Requires
  // other.size() == size().
  double SquaredDistance(const Tensor& other) const;
  // True if every element is finite.
  bool AllFinite() const;

 private:
  Shape shape_;
  int64_t size_ = 0;
  std::vector<float> storage_;  // Empty for views.
  float* data_ = nullptr;
  int64_t view_capacity_ = 0;
  bool view_ = false;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_TENSOR_TENSOR_H_

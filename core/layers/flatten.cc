// Flatten: [d1, ..., dk] -> [d1 * ... * dk] per sample (row-major, so the
// data is unchanged; only the shape differs).
#include <algorithm>
#include <memory>

#include "core/layers/layer_factories.h"

namespace nnlab {
namespace {

class Flatten : public Layer {
 public:
  absl::string_view kind() const override { return "flatten"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    return Shape{NumElements(in)};
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    in_shape_ = in;
    features_ = NumElements(in);
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    out->Resize({in.dim(0), features_});
    std::copy(in.data(), in.data() + in.size(), out->data());
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    if (grad_in == nullptr) return;
    Shape shape{grad_out.dim(0)};
    shape.insert(shape.end(), in_shape_.begin(), in_shape_.end());
    grad_in->Resize(shape);
    std::copy(grad_out.data(), grad_out.data() + grad_out.size(),
              grad_in->data());
  }

 private:
  Shape in_shape_;
  int64_t features_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewFlatten(const LayerSpec&) {
  return std::unique_ptr<Layer>(new Flatten());
}

}  // namespace nnlab

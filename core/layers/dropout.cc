// Inverted dropout (Srivastava et al. 2014): in training y = x * m / p with
// m ~ Bernoulli(p = keep_prob) drawn per unit and step, so E[y] = x; in
// evaluation y = x exactly.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/layers/layer_factories.h"
#include "core/layers/split_elements.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

class Dropout : public Layer {
 public:
  explicit Dropout(float keep_prob) : keep_prob_(keep_prob) {}

  absl::string_view kind() const override { return "dropout"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    return in;
  }

  void SetRng(Rng* rng) override { rng_ = rng; }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    out->Resize(in.shape());
    const int64_t n = in.size();
    const float* x = in.data();
    float* y = out->data();
    masked_ = mode == Mode::kTrain && keep_prob_ < 1.0f;
    if (!masked_) {
      SplitElements(n, [&](int64_t lo, int64_t hi) {
        std::copy(x + lo, x + hi, y + lo);
      });
      return;
    }
    NNLAB_CHECK(rng_ != nullptr);  // The model sets it before any Forward.
    mask_.Resize(in.shape());
    float* m = mask_.data();
    const float scale = 1.0f / keep_prob_;
    // Two units per 64-bit draw, each from a 24-bit uniform (the
    // resolution of Rng::Uniform()): the generator cost as much as the rest
    // of the layer at one draw per unit.
    const uint32_t threshold = KeepThreshold();
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
      const uint64_t r = rng_->Next();
      m[i] = uint32_t(r >> 40) < threshold ? scale : 0.0f;
      m[i + 1] = uint32_t((r >> 8) & 0xFFFFFF) < threshold ? scale : 0.0f;
    }
    if (i < n) m[i] = uint32_t(rng_->Next() >> 40) < threshold ? scale : 0.0f;
    for (int64_t j = 0; j < n; ++j) y[j] = x[j] * m[j];
  }

  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    if (grad_in == nullptr) return;
    grad_in->Resize(grad_out.shape());
    const int64_t n = grad_out.size();
    const float* dy = grad_out.data();
    float* dx = grad_in->data();
    if (!masked_) {
      std::copy(dy, dy + n, dx);
      return;
    }
    const float* m = mask_.data();
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * m[i];
  }

 private:
  // Keep a unit when its 24-bit draw u is below this: u / 2^24 < keep_prob
  // exactly as Rng::Uniform() < keep_prob.
  uint32_t KeepThreshold() const {
    return static_cast<uint32_t>(
        std::ceil(static_cast<double>(keep_prob_) * 16777216.0));
  }

  float keep_prob_;
  Rng* rng_ = nullptr;
  Tensor mask_;          // 0 or 1/keep_prob per unit of the last Forward.
  bool masked_ = false;  // Whether the last Forward applied mask_.
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewDropout(const LayerSpec& spec) {
  if (!(spec.keep_prob > 0.0f && spec.keep_prob <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("keep_prob must be in (0, 1], got ", spec.keep_prob));
  }
  return std::unique_ptr<Layer>(new Dropout(spec.keep_prob));
}

}  // namespace nnlab

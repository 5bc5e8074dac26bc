// Residual block (He et al. 2016): y = F(x) + shortcut(x), where F is a
// nested stack of layers and the shortcut is the identity when F keeps the
// shape, else a 1x1 convolution (strided when F downsamples) for [C, H, W]
// features or a dense layer for [F] features. Stacking blocks gives
// x^L = x^l + sum_{i=l}^{L-1} F(x^i), so dE/dx^l keeps a direct path.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/layers/conv_chain.h"
#include "core/layers/layer_factories.h"
#include "core/layers/split_elements.h"
#include "core/model/model.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

// How the shortcut maps the block input onto the body output.
struct ShortcutPlan {
  enum Kind { kIdentity, kConv, kDense } kind = kIdentity;
  int64_t stride = 1;
};

absl::StatusOr<ShortcutPlan> PlanShortcut(const Shape& in, const Shape& out) {
  ShortcutPlan plan;
  if (in == out) return plan;
  if (in.size() == 1 && out.size() == 1) {
    plan.kind = ShortcutPlan::kDense;
    return plan;
  }
  if (in.size() == 3 && out.size() == 3) {
    // A 1x1 kernel with stride s maps H to (H - 1) / s + 1.
    for (int64_t s = 1; s <= std::max(in[1], in[2]); ++s) {
      if ((in[1] - 1) / s + 1 == out[1] && (in[2] - 1) / s + 1 == out[2]) {
        plan.kind = ShortcutPlan::kConv;
        plan.stride = s;
        return plan;
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "body output ", ShapeToString(out), " cannot be projected from input ",
      ShapeToString(in),
      " (needs equal shapes, rank-1 features, or [C, H, W] maps that a "
      "strided 1x1 convolution can match)"));
}

// The shortcut's projection for `plan` onto the body output `out`, named
// `name` and not initialised; null for the identity.
std::unique_ptr<Layer> NewProjection(const ShortcutPlan& plan, const Shape& out,
                                     const std::string& name) {
  LayerSpec proj;
  absl::StatusOr<std::unique_ptr<Layer>> layer_or;
  switch (plan.kind) {
    case ShortcutPlan::kIdentity:
      return nullptr;
    case ShortcutPlan::kConv:
      proj.kind = "conv2d";
      proj.filters = out[0];
      proj.kernel = 1;
      proj.stride = plan.stride;
      proj.padding = 0;
      layer_or = NewConv2D(proj);
      break;
    case ShortcutPlan::kDense:
      proj.kind = "dense";
      proj.units = out[0];
      layer_or = NewDense(proj);
      break;
  }
  NNLAB_CHECK(layer_or.ok());  // out[0] >= 1: the body's shapes were checked.
  std::unique_ptr<Layer> layer = std::move(layer_or).value();
  layer->set_name(name);
  return layer;
}

class Residual : public Layer {
 public:
  explicit Residual(std::vector<LayerSpec> body)
      : body_specs_(std::move(body)) {}

  absl::string_view kind() const override { return "residual"; }

  absl::StatusOr<Shape> OutputShape(const Shape& in) const override {
    NNLAB_ASSIGN_OR_RETURN(
        Shape out, LayerStack::OutputShape(body_specs_, in, name() + "."));
    NNLAB_RETURN_IF_ERROR(PlanShortcut(in, out).status());
    return out;
  }

  // F's layers and the projection, each at its own input.
  LayerCost Cost(const Shape& in) const override {
    const ModelCost body = LayerStack::Estimate(body_specs_, in, name() + ".");
    LayerCost cost{body.params, body.buffer_floats};
    if (!body.status.ok()) return cost;  // What F claims up to its error.
    absl::StatusOr<ShortcutPlan> plan = PlanShortcut(in, body.output_shape);
    if (!plan.ok()) return cost;
    std::unique_ptr<Layer> proj =
        NewProjection(*plan, body.output_shape, name() + ".proj");
    if (proj != nullptr) {
      const LayerCost p = proj->Cost(in);
      cost.params = CostAdd(cost.params, p.params);
      cost.buffer_floats = std::max(cost.buffer_floats, p.buffer_floats);
    }
    return cost;
  }

  void Init(const Shape& in, InitKind init, Rng* rng) override {
    auto body_or = LayerStack::Build(body_specs_, in, init, rng, name() + ".");
    NNLAB_CHECK(body_or.ok());  // OutputShape validated the same build.
    body_ = std::move(body_or).value();
    auto plan_or = PlanShortcut(in, body_.final_shape());
    NNLAB_CHECK(plan_or.ok());
    proj_ = NewProjection(*plan_or, body_.final_shape(), name() + ".proj");
    if (proj_ != nullptr) {
      NNLAB_CHECK(proj_->OutputShape(in).ok());
      proj_->Init(in, init, rng);
    }
    if (rng_ != nullptr) SetRng(rng_);
  }

  void Forward(const Tensor& in, Tensor* out, Mode mode) override {
    const Tensor& f = body_.Forward(in, mode);
    out->Resize(f.shape());
    const Tensor* shortcut = &in;
    if (proj_ != nullptr) {
      proj_->Forward(in, &proj_out_, mode);
      shortcut = &proj_out_;
    }
    const int64_t n = f.size();
    const float* a = f.data();
    const float* b = shortcut->data();
    float* y = out->data();
    SplitElements(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) y[i] = a[i] + b[i];
    });
  }

  // dE/dx = dE/dx through F + dE/dx through the shortcut.
  void Backward(const Tensor& grad_out, Tensor* grad_in) override {
    body_.Backward(grad_out, grad_in);
    if (proj_ != nullptr) {
      proj_->Backward(grad_out, grad_in != nullptr ? &proj_grad_ : nullptr);
    }
    if (grad_in == nullptr) return;
    const Tensor& g = proj_ != nullptr ? proj_grad_ : grad_out;
    const int64_t n = g.size();
    float* dx = grad_in->data();
    const float* gd = g.data();
    SplitElements(n, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) dx[i] += gd[i];
    });
  }

  // The projection (if any) from the block input into a slot of its own,
  // then the body, whose last convolution adds the shortcut as it writes.
  bool AppendToConvChain(ConvChain* chain) override {
    const ConvChain::Plan before = chain->plan();
    const int in = chain->plan().value;
    const Shape in_shape = chain->plan().shape;
    int shortcut = in;
    if (proj_ != nullptr) {
      if (!proj_->AppendToConvChain(chain)) return false;
      shortcut = chain->plan().value;
      chain->set_value(in, in_shape);
    }
    chain->KeepLive(shortcut);
    for (int i = 0; i < body_.size(); ++i) {
      if (!body_.layer(i)->AppendToConvChain(chain)) {
        chain->set_plan(before);
        return false;
      }
    }
    if (!chain->AddShortcut(shortcut)) {
      chain->set_plan(before);
      return false;
    }
    return true;
  }

  std::vector<Param> Params() override {
    std::vector<Param> params = body_.Params();
    if (proj_ != nullptr) {
      for (Param& p : proj_->Params()) params.push_back(std::move(p));
    }
    return params;
  }

  std::vector<std::pair<std::string, Tensor*>> Buffers() override {
    return body_.Buffers();
  }

  void SetRng(Rng* rng) override {
    rng_ = rng;
    body_.SetRng(rng);
    if (proj_ != nullptr) proj_->SetRng(rng);
  }

 private:
  std::vector<LayerSpec> body_specs_;
  LayerStack body_;
  std::unique_ptr<Layer> proj_;  // Null for the identity shortcut.
  Tensor proj_out_, proj_grad_;
  Rng* rng_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Layer>> NewResidual(const LayerSpec& spec) {
  if (spec.body.empty()) {
    return absl::InvalidArgumentError("residual body is empty");
  }
  return std::unique_ptr<Layer>(new Residual(spec.body));
}

}  // namespace nnlab

#include "core/model/zoo.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace nnlab {
namespace {

LayerSpec LayerOf(const char* kind) {
  LayerSpec spec;
  spec.kind = kind;
  return spec;
}

LayerSpec Conv3x3(int64_t filters, int64_t stride) {
  LayerSpec spec = LayerOf("conv2d");
  spec.filters = filters;
  spec.kernel = 3;
  spec.stride = stride;
  spec.padding = 1;
  return spec;
}

}  // namespace

ModelSpec FashionResidualCnn(bool shortcuts) {
  ModelSpec spec;
  spec.name = shortcuts ? "fashion-resnet" : "fashion-plain-cnn";
  spec.input_shape = {1, 28, 28};
  spec.layers = {Conv3x3(16, 1), LayerOf("batch_norm"), LayerOf("relu")};
  const int64_t channels[] = {16, 32, 64};
  const int64_t strides[] = {1, 2, 2};
  for (int b = 0; b < 3; ++b) {
    std::vector<LayerSpec> body = {
        Conv3x3(channels[b], strides[b]), LayerOf("batch_norm"),
        LayerOf("relu"), Conv3x3(channels[b], 1), LayerOf("batch_norm")};
    if (shortcuts) {
      LayerSpec block = LayerOf("residual");
      block.name = "block" + std::to_string(b + 1);
      block.body = std::move(body);
      spec.layers.push_back(std::move(block));
    } else {
      for (LayerSpec& l : body) spec.layers.push_back(std::move(l));
    }
    spec.layers.push_back(LayerOf("relu"));
  }
  spec.layers.push_back(LayerOf("global_avg_pool"));
  LayerSpec head = LayerOf("dense");
  head.units = 10;
  spec.layers.push_back(head);
  spec.init = InitKind::kHe;
  spec.seed = 1;
  return spec;
}

ModelSpec AddingProblemModel(const std::string& recurrent_kind, int64_t length,
                             uint64_t seed) {
  ModelSpec spec;
  spec.name = "adding_" + recurrent_kind;
  spec.input_shape = {length, 2};
  spec.init = InitKind::kGlorot;
  spec.loss = LossKind::kMse;
  spec.seed = seed;
  LayerSpec recurrent = LayerOf(recurrent_kind.c_str());
  recurrent.units = 64;
  LayerSpec head = LayerOf("dense");
  head.units = 1;
  spec.layers = {recurrent, head};
  return spec;
}

double MeanSquaredError(Model* model, const Tensor& x, const Tensor& y) {
  const int64_t n = x.dim(0), per_sample = x.size() / n, batch = 250;
  Shape shape = x.shape();
  double sum = 0;
  for (int64_t b = 0; b < n; b += batch) {
    const int64_t m = std::min(batch, n - b);
    shape[0] = m;
    const Tensor xb =
        Tensor::View(const_cast<float*>(x.data()) + b * per_sample, shape);
    const Tensor& out = model->Forward(xb, Mode::kEval);
    for (int64_t i = 0; i < m; ++i) {
      const double d = out[i] - y[b + i];
      sum += d * d;
    }
  }
  return sum / n;
}

}  // namespace nnlab

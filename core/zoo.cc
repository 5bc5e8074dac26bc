#include "core/zoo.h"

#include <string>
#include <utility>
#include <vector>

namespace nnlab {
namespace {

LayerSpec Layer(const char* kind) {
  LayerSpec spec;
  spec.kind = kind;
  return spec;
}

LayerSpec Conv3x3(int64_t filters, int64_t stride) {
  LayerSpec spec = Layer("conv2d");
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
  spec.layers = {Conv3x3(16, 1), Layer("batch_norm"), Layer("relu")};
  const int64_t channels[] = {16, 32, 64};
  const int64_t strides[] = {1, 2, 2};
  for (int b = 0; b < 3; ++b) {
    std::vector<LayerSpec> body = {
        Conv3x3(channels[b], strides[b]), Layer("batch_norm"), Layer("relu"),
        Conv3x3(channels[b], 1), Layer("batch_norm")};
    if (shortcuts) {
      LayerSpec block = Layer("residual");
      block.name = "block" + std::to_string(b + 1);
      block.body = std::move(body);
      spec.layers.push_back(std::move(block));
    } else {
      for (LayerSpec& l : body) spec.layers.push_back(std::move(l));
    }
    spec.layers.push_back(Layer("relu"));
  }
  spec.layers.push_back(Layer("global_avg_pool"));
  LayerSpec head = Layer("dense");
  head.units = 10;
  spec.layers.push_back(head);
  spec.init = InitKind::kHe;
  spec.seed = 1;
  return spec;
}

}  // namespace nnlab

// The ONNX exporter's contract below the wire: every registered layer kind
// has an ONNX form, others are FailedPrecondition naming the layer, and a
// snapshot missing a tensor is an error rather than a broken graph. The
// numbers are checked against ONNX Runtime by tests/onnx/.
#include <gtest/gtest.h>

#include "core/layers/registry.h"
#include "server/onnx_export.h"

namespace nnlab::server {
namespace {

TEST(OnnxGraphTest, EveryRegisteredKindIsExportable) {
  for (const RegisteredLayer& l : RegisteredLayers()) {
    EXPECT_TRUE(OnnxExportable(l.kind)) << l.kind;
  }
  EXPECT_FALSE(OnnxExportable("mystery"));
}

TEST(OnnxGraphTest, UnexportableLayerIsFailedPreconditionNamingIt) {
  ModelSpec spec;
  spec.input_shape = {4};
  spec.layers.resize(2);
  spec.layers[0].kind = "relu";
  spec.layers[1].kind = "mystery";
  spec.layers[1].name = "odd";
  WeightSet w;
  auto out = ExportOnnx(spec, w, "", "m", /*classifier=*/false);
  ASSERT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition)
      << out.status();
  EXPECT_NE(out.status().message().find("layer odd (mystery)"),
            absl::string_view::npos)
      << out.status();
}

TEST(OnnxGraphTest, MissingWeightIsInternal) {
  ModelSpec spec;
  spec.input_shape = {4};
  spec.layers.resize(1);
  spec.layers[0].kind = "dense";
  spec.layers[0].units = 3;
  WeightSet w;
  w.params.emplace_back("dense0.weight", Tensor({3, 4}));
  auto out = ExportOnnx(spec, w, "", "m", /*classifier=*/true);
  ASSERT_EQ(out.status().code(), absl::StatusCode::kInternal) << out.status();
  EXPECT_NE(out.status().message().find("dense0.bias"),
            absl::string_view::npos);
  w.params.emplace_back("dense0.bias", Tensor({3}));
  EXPECT_TRUE(ExportOnnx(spec, w, "", "m", true).ok());
}

}  // namespace
}  // namespace nnlab::server

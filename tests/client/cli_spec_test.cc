// Model spec files: what parses, and that every error names the line and
// column of the offending token.
#include <string>

#include "absl/strings/match.h"
#include "client/cli/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/cli_test_util.h"

namespace nnlab::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(SpecTest, ExampleSpecsParse) {
  for (const char* name : {"examples/mnist_mlp_100.textproto",
                           "examples/lecture_deep_sigmoid.textproto",
                           "examples/nielsen_ch5.textproto"}) {
    v1::CreateModelRequest req;
    absl::Status s =
        LoadModelDefinition(nnlab::testing::SourcePath(name), &req);
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_TRUE(req.has_spec()) << name;
    EXPECT_EQ(req.spec().input_shape_size(), 1);
    EXPECT_EQ(req.spec().input_shape(0), 784);
  }
  v1::CreateModelRequest req;
  ASSERT_TRUE(
      LoadModelDefinition(
          nnlab::testing::SourcePath("examples/mnist_mlp_100.textproto"), &req)
          .ok());
  ASSERT_EQ(req.spec().layers_size(), 3);
  EXPECT_EQ(req.spec().layers(0).dense().units(), 100);
  EXPECT_TRUE(req.spec().layers(1).has_relu());
  EXPECT_EQ(req.spec().layers(2).dense().units(), 10);
  EXPECT_EQ(req.spec().init(), v1::INIT_HE);
}

TEST(SpecTest, TextProtoUnknownFieldPointsAtLineAndColumn) {
  const std::string text =
      "name: \"x\"\n"
      "input_shape: [784]\n"
      "layers { dense { unit: 3 } }\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "spec.textproto", false, &req);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // "unit" starts at column 18 of line 3.
  EXPECT_THAT(std::string(s.message()), StartsWith("spec.textproto:3:18: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"unit\""));
}

TEST(SpecTest, TextProtoSyntaxError) {
  const std::string text =
      "name: \"x\"\n"
      "input_shape: [784 28]\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "f.txtpb", false, &req);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // The missing comma before "28" (line 2, column 19).
  EXPECT_THAT(std::string(s.message()), StartsWith("f.txtpb:2:19: "));
}

TEST(SpecTest, TextProtoBadEnumValue) {
  // "LOSS_MSE" as a layer name is a string, not the enum value: the error
  // must point at the enum value on line 3, not at line 2's look-alike.
  const std::string text =
      "name: \"x\"\n"
      "layers { name: \"LOSS_FOO\" relu {} }\n"
      "loss: LOSS_FOO\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "a.textproto", false, &req);
  EXPECT_THAT(std::string(s.message()), StartsWith("a.textproto:3:7: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("LOSS_FOO"));
}

TEST(SpecTest, JsonParses) {
  const std::string text = R"({
    "name": "j",
    "inputShape": ["784"],
    "layers": [{"dense": {"units": 30}}, {"sigmoid": {}}, {"dense": {"units": 10}}],
    "loss": "LOSS_SOFTMAX_CROSS_ENTROPY",
    "init": "INIT_NORMAL"
  })";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "m.json", true, &req);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(req.has_spec());
  EXPECT_EQ(req.spec().layers_size(), 3);
  EXPECT_TRUE(req.spec().layers(1).has_sigmoid());
  EXPECT_EQ(req.spec().init(), v1::INIT_NORMAL);
}

TEST(SpecTest, JsonSyntaxErrorPointsAtTheOffendingCharacter) {
  const std::string text =
      "{\n"
      "  \"name\": \"x\",\n"
      "  \"layers\": [\n"
      "    {\"dense\": {\"units\": 3}}\n"
      "    {\"dense\": {\"units\": 3}}\n"
      "  ]\n"
      "}\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "m.json", true, &req);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // The missing comma: line 5 starts with the '{' at column 5.
  EXPECT_THAT(std::string(s.message()), StartsWith("m.json:5:5: "));
  // One line only: the converter's caret snippet is dropped.
  EXPECT_FALSE(absl::StrContains(s.message(), "\n"));
}

TEST(SpecTest, JsonUnknownNestedFieldPointsAtItsKey) {
  // "units" is valid in the dense layer of line 4 and wrong in the conv2d
  // of line 5: the error must point at the second one.
  const std::string text =
      "{\n"
      "  \"name\": \"x\",\n"
      "  \"layers\": [\n"
      "    {\"dense\": {\"units\": 3}},\n"
      "    {\"conv2d\": {\"units\": 3}}\n"
      "  ]\n"
      "}\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "m.json", true, &req);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("m.json:5:17: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("units"));
}

TEST(SpecTest, JsonUnknownTopLevelField) {
  const std::string text = "{\"name\": \"x\",\n \"layerz\": []}";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "m.json", true, &req);
  EXPECT_THAT(std::string(s.message()), StartsWith("m.json:2:2: "));
  EXPECT_THAT(std::string(s.message()), HasSubstr("layerz"));
}

TEST(SpecTest, JsonBadValuePointsAtTheValue) {
  const std::string text =
      "{\n  \"name\": \"x\",\n  \"inputShape\": [\"784\", \"abc\"]\n}\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "m.json", true, &req);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("m.json:3:"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("abc"));
}

TEST(SpecTest, GanSpecsAreRecognised) {
  const std::string text =
      "name: \"gan\"\n"
      "noise_dim: 8\n"
      "generator { layers { dense { units: 16 } } }\n"
      "discriminator { layers { dense { units: 1 } } }\n";
  v1::CreateModelRequest req;
  absl::Status s = ParseModelDefinition(text, "g.textproto", false, &req);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_TRUE(req.has_gan());
  EXPECT_EQ(req.gan().noise_dim(), 8);
  EXPECT_EQ(req.gan().generator().layers(0).dense().units(), 16);

  // A typo inside a GAN is reported against the GanSpec, where it is.
  const std::string bad =
      "name: \"gan\"\n"
      "generator { layers { dense { units: 16 } } }\n"
      "discriminator { layerz {} }\n";
  s = ParseModelDefinition(bad, "g.textproto", false, &req);
  EXPECT_THAT(std::string(s.message()), StartsWith("g.textproto:3:"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("layerz"));
}

TEST(SpecTest, MissingFileIsNotFound) {
  v1::CreateModelRequest req;
  absl::Status s = LoadModelDefinition("/nonexistent/spec.textproto", &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("/nonexistent/spec.textproto"));
}

}  // namespace
}  // namespace nnlab::cli

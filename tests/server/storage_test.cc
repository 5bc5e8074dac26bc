// Durable records: CRC-32C, framing, atomic writes, corruption detection,
// identifier checks, and the boundary conversions of convert.h.
#include "server/storage.h"

#include <cmath>
#include <fstream>

#include "core/model/zoo.h"
#include "gtest/gtest.h"
#include "server/convert.h"
#include "tests/server/server_test_util.h"

namespace nnlab::server {
namespace {

TEST(StorageTest, Crc32cKnownValues) {
  // The CRC-32C check value (RFC 3720 B.4) and the iSCSI all-zero vector.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  // Chaining equals one pass.
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
}

// Bit by bit, reflected polynomial 0x82F63B78: the definition.
uint32_t BitwiseCrc32c(absl::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & -(crc & 1));
  }
  return ~crc;
}

TEST(StorageTest, Crc32cEqualsTheBitwiseDefinition) {
  // Every length up to 300 (the CRC instruction's 8-byte steps and the
  // tails around them), from every alignment, and a large buffer.
  std::string data(1 << 20, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  const absl::string_view v(data);
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 300; ++n) {
      ASSERT_EQ(Crc32c(v.substr(offset, n)), BitwiseCrc32c(v.substr(offset, n)))
          << "offset " << offset << ", " << n << " bytes";
    }
  }
  EXPECT_EQ(Crc32c(v), BitwiseCrc32c(v));
  EXPECT_EQ(Crc32c(v.substr(777), Crc32c(v.substr(0, 777))), Crc32c(v));
}

TEST(StorageTest, FramesDetectEveryCorruption) {
  const std::string payload = "weights and optimizer state";
  const std::string frame = Frame(payload);
  ASSERT_TRUE(Unframe(frame).ok());
  EXPECT_EQ(*Unframe(frame), payload);
  // Any flipped bit, and any truncation, is DATA_LOSS.
  for (size_t i = 0; i < frame.size(); ++i) {
    std::string bad = frame;
    bad[i] ^= 0x10;
    EXPECT_EQ(Unframe(bad).status().code(), absl::StatusCode::kDataLoss) << i;
  }
  for (size_t n = 0; n < frame.size(); ++n) {
    EXPECT_EQ(Unframe(frame.substr(0, n)).status().code(),
              absl::StatusCode::kDataLoss)
        << n;
  }
}

// The byte layout of the file comment, so files written by earlier
// versions stay readable; AppendFramed writes the same bytes as Frame of
// the serialised message, after whatever the string held.
TEST(StorageTest, FramesHaveTheDocumentedLayoutAndAppendFramedMatches) {
  const std::string payload = "abc";
  const uint32_t crc = Crc32c(payload);
  std::string expected = "NNLR";
  expected += std::string("\x01\0\0\0", 4);
  expected += std::string("\x03\0\0\0\0\0\0\0", 8);
  for (int i = 0; i < 4; ++i) expected += static_cast<char>(crc >> (8 * i));
  expected += payload;
  EXPECT_EQ(Frame(payload), expected);

  v1::Job a, b;
  a.set_job_id("j-1");
  a.set_step(42);
  b.set_job_id("j-2");
  std::string out = "head";
  ASSERT_TRUE(AppendFramed(a, &out));
  ASSERT_TRUE(AppendFramed(b, &out));
  EXPECT_EQ(out, "head" + Frame(a.SerializeAsString()) +
                     Frame(b.SerializeAsString()));
}

TEST(StorageTest, AtomicWritesRecordsAndTempCleanup) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/a.job";
  v1::Job job;
  job.set_job_id("j-1");
  job.set_step(42);
  ASSERT_TRUE(WriteRecord(path, job).ok());
  v1::Job back;
  ASSERT_TRUE(ReadRecord(path, &back).ok());
  EXPECT_EQ(back.step(), 42);
  // Overwrite replaces the whole file.
  job.set_step(43);
  ASSERT_TRUE(WriteRecord(path, job).ok());
  ASSERT_TRUE(ReadRecord(path, &back).ok());
  EXPECT_EQ(back.step(), 43);
  EXPECT_TRUE(ListFiles(dir.path(), ".tmp").empty());
  // A torn file reads as DATA_LOSS naming it; a missing one as NOT_FOUND.
  std::string data = *ReadFile(path);
  std::ofstream(path, std::ios::binary) << data.substr(0, data.size() - 3);
  absl::Status s = ReadRecord(path, &back);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("a.job"), std::string::npos);
  EXPECT_EQ(ReadRecord(dir.path() + "/none", &back).code(),
            absl::StatusCode::kNotFound);
  std::ofstream(dir.path() + "/x.model.1.0.tmp") << "partial";
  EXPECT_EQ(CleanTempFiles(dir.path()), 1);
  EXPECT_TRUE(ListFiles(dir.path(), ".tmp").empty());
}

TEST(StorageTest, IdsCannotTraversePaths) {
  EXPECT_TRUE(IsValidId("mnist-mlp_2"));
  EXPECT_TRUE(IsValidId(std::string(64, 'a')));
  for (const char* bad :
       {"", "..", "../x", "a/b", "a b", "a\\b", "ä", ".hidden"}) {
    EXPECT_FALSE(IsValidId(bad)) << bad;
  }
  EXPECT_FALSE(IsValidId(std::string(65, 'a')));
}

TEST(ConvertTest, TensorsRoundTripAndAreValidated) {
  Limits limits;
  v1::Tensor p;
  p.add_shape(2);
  p.add_shape(3);
  for (int i = 0; i < 6; ++i) p.add_data(0.5f * i);
  absl::StatusOr<Tensor> t = TensorFromProto(p, "x", limits);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)[5], 2.5f);
  v1::Tensor raw;
  TensorToProto(*t, /*raw=*/true, &raw);
  EXPECT_EQ(raw.raw_data().size(), 24u);
  absl::StatusOr<Tensor> back = TensorFromProto(raw, "x", limits);
  ASSERT_TRUE(back.ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ((*back)[i], (*t)[i]);
  p.set_shape(1, 1LL << 40);
  EXPECT_EQ(TensorFromProto(p, "x", limits).status().code(),
            absl::StatusCode::kInvalidArgument);
  p.set_shape(1, 1 << 20);
  p.set_shape(0, 1 << 20);
  EXPECT_EQ(TensorFromProto(p, "x", limits).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(ConvertTest, OptimizerDefaultsAndErrors) {
  v1::OptimizerConfig p;
  p.set_kind(v1::OPTIMIZER_RMSPROP);
  absl::StatusOr<OptimizerConfig> c = OptimizerFromProto(p, "opt");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, OptimizerKind::kRmsprop);
  EXPECT_FALSE(c->has_rho);  // 0 selects the optimizer's default.
  EXPECT_FLOAT_EQ(c->beta2, 0.999f);
  p.set_rho(0.5f);
  p.set_decay_steps(10);
  c = OptimizerFromProto(p, "opt");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->has_rho);
  EXPECT_FLOAT_EQ(c->rho, 0.5f);
  EXPECT_EQ(c->decay_steps, 10);
  p.set_beta1(std::nanf(""));
  absl::Status s = OptimizerFromProto(p, "opt").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("opt.beta1"), std::string::npos) << s.message();
}

TEST(ConvertTest, SpecsMapEveryLayerKind) {
  v1::ModelSpec p;
  p.add_input_shape(1);
  p.add_input_shape(8);
  p.add_input_shape(8);
  auto* conv = p.add_layers()->mutable_conv2d();
  conv->set_filters(4);
  conv->set_padding(1);
  p.add_layers()->mutable_batch_norm();
  p.add_layers()->mutable_relu();
  p.add_layers()->mutable_max_pool2d();
  auto* res = p.add_layers()->mutable_residual();
  res->add_body()->mutable_conv2d()->set_filters(4);
  res->mutable_body(0)->mutable_conv2d()->set_padding(1);
  p.add_layers()->mutable_global_avg_pool();
  p.add_layers()->mutable_dropout();
  p.add_layers()->mutable_dense()->set_units(3);
  Limits limits;
  absl::StatusOr<ModelSpec> s = ModelSpecFromProto(p, "spec", limits);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->layers.size(), 8u);
  EXPECT_EQ(s->layers[0].kind, "conv2d");
  EXPECT_EQ(s->layers[0].kernel, 3);
  EXPECT_EQ(s->layers[3].kind, "max_pool2d");
  EXPECT_EQ(s->layers[3].kernel, 2);
  EXPECT_EQ(s->layers[3].stride, 2);
  EXPECT_EQ(s->layers[4].body.size(), 1u);
  EXPECT_FLOAT_EQ(s->layers[6].keep_prob, 0.5f);
  absl::StatusOr<std::unique_ptr<Model>> m =
      BuildModelChecked(*s, "spec", limits);
  ASSERT_TRUE(m.ok()) << m.status();
  // conv 1->4 (36 + 4), bn (8), residual conv 4->4 (144 + 4), dense 4->3 (15).
  EXPECT_EQ((*m)->ParameterCount(), 40 + 8 + 148 + 15);
  EXPECT_EQ(EstimateParameters(*s), double((*m)->ParameterCount()));
}

// GetModel's per-layer traits come from the core's layer registry, so
// clients label layers without knowing kinds by name.
TEST(ConvertTest, DescribeModelSendsLayerTraits) {
  v1::ModelSpec p;
  p.add_input_shape(6);
  p.add_input_shape(3);
  p.add_layers()->mutable_lstm()->set_units(4);
  p.add_layers()->mutable_dense()->set_units(5);
  p.add_layers()->mutable_relu();
  p.add_layers()->mutable_dense()->set_units(5);
  p.add_layers()->mutable_leaky_relu();
  p.add_layers()->mutable_dense()->set_units(5);
  p.add_layers()->mutable_sigmoid();
  p.add_layers()->mutable_dense()->set_units(5);
  p.add_layers()->mutable_tanh();
  p.add_layers()->mutable_dropout();
  p.add_layers()->mutable_dense()->set_units(2);
  Limits limits;
  absl::StatusOr<ModelSpec> s = ModelSpecFromProto(p, "spec", limits);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<std::unique_ptr<Model>> m =
      BuildModelChecked(*s, "spec", limits);
  ASSERT_TRUE(m.ok()) << m.status();
  v1::Model info;
  DescribeModel(m->get(), "", &info);
  struct Want {
    const char* kind;
    bool activation, recurrent;
    v1::SaturationKind saturation;
  };
  const std::vector<Want> want = {
      {"lstm", false, true, v1::SATURATION_UNSPECIFIED},
      {"dense", false, false, v1::SATURATION_UNSPECIFIED},
      {"relu", true, false, v1::SATURATION_DEAD},
      {"dense", false, false, v1::SATURATION_UNSPECIFIED},
      {"leaky_relu", true, false, v1::SATURATION_DEAD},
      {"dense", false, false, v1::SATURATION_UNSPECIFIED},
      {"sigmoid", true, false, v1::SATURATION_SATURATED},
      {"dense", false, false, v1::SATURATION_UNSPECIFIED},
      {"tanh", true, false, v1::SATURATION_SATURATED},
      {"dropout", false, false, v1::SATURATION_UNSPECIFIED},
      {"dense", false, false, v1::SATURATION_UNSPECIFIED},
  };
  ASSERT_EQ(info.layers_size(), static_cast<int>(want.size()));
  for (int i = 0; i < info.layers_size(); ++i) {
    const v1::LayerInfo& l = info.layers(i);
    EXPECT_EQ(l.kind(), want[i].kind) << i;
    EXPECT_EQ(l.is_activation(), want[i].activation) << l.kind();
    EXPECT_EQ(l.is_recurrent(), want[i].recurrent) << l.kind();
    EXPECT_EQ(l.saturation(), want[i].saturation) << l.kind();
  }
}

LayerSpec Kind(const std::string& kind, int64_t units = 0) {
  LayerSpec l;
  l.kind = kind;
  l.units = units;
  return l;
}

// BuildModelChecked refuses a spec over the limit before allocating it,
// which is only fair if the estimate is the count the core builds.
TEST(ConvertTest, EstimateIsTheCoreCountOfEverySpecThatBuilds) {
  std::vector<ModelSpec> specs = {
      FashionResidualCnn(), FashionResidualCnn(/*shortcuts=*/false),
      AddingProblemModel("rnn", 20), AddingProblemModel("lstm", 20)};
  ModelSpec seq;  // Many-to-many: stacked recurrent layers, a per-step head.
  seq.input_shape = {12, 7};
  seq.layers = {Kind("lstm", 9), Kind("rnn", 5), Kind("time_dense", 7)};
  seq.loss = LossKind::kMse;
  seq.layers[0].return_sequences = seq.layers[1].return_sequences = true;
  specs.push_back(seq);
  ModelSpec flat;  // Batch norm on features, a dense shortcut.
  flat.input_shape = {20};
  LayerSpec block = Kind("residual");
  block.body = {Kind("dense", 6), Kind("batch_norm"), Kind("relu")};
  flat.layers = {Kind("dense", 10), Kind("batch_norm"), block,
                 Kind("dense", 3)};
  specs.push_back(flat);
  Limits limits;
  for (const ModelSpec& spec : specs) {
    absl::StatusOr<std::unique_ptr<Model>> m =
        BuildModelChecked(spec, "spec", limits);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(EstimateParameters(spec), double((*m)->ParameterCount()))
        << spec.name << " " << ShapeToString(spec.input_shape);
  }
  // One parameter over the limit is refused, with the count.
  limits.max_params = static_cast<int64_t>(EstimateParameters(flat)) - 1;
  absl::Status over = BuildModelChecked(flat, "spec", limits).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.message().find(
                absl::StrCat("has ", limits.max_params + 1, " parameters")),
            std::string::npos)
      << over.message();
}

}  // namespace
}  // namespace nnlab::server

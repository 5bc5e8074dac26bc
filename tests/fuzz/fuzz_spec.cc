// Fuzzes model specs as clients write them: the bytes are parsed as a
// ModelSpec in protobuf text format and, separately, as JSON; whatever
// parses is validated and translated (server/convert.h, with the server's
// default Limits), built into a core model, and, when the model is small,
// run forward (eval and train mode) and backward on a batch of two.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/model/model.h"
#include "google/protobuf/util/json_util.h"
#include "nnlab/v1/model.pb.h"
#include "server/convert.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/proto_mutator.h"

namespace nnlab::fuzz {
namespace {

// Bounds on what the harness runs forward (fuzzing speed, not safety: the
// build itself runs under the server's limits).
constexpr double kMaxForwardParams = 2e6;
constexpr int64_t kMaxForwardElements = int64_t{1} << 22;

void Exercise(const v1::ModelSpec& proto) {
  const server::Limits limits;  // The server's defaults.
  absl::StatusOr<ModelSpec> spec =
      server::ModelSpecFromProto(proto, "spec", limits);
  if (!spec.ok()) return;
  if (server::EstimateParameters(*spec) > kMaxForwardParams) return;
  absl::StatusOr<std::unique_ptr<Model>> model =
      server::BuildModelChecked(*spec, "spec", limits);
  if (!model.ok()) return;
  Model* m = model->get();
  // Activation sizes of a batch of two, summed over layers.
  int64_t elements = 2 * NumElements(m->input_shape());
  for (int i = 0; i < m->layers().size(); ++i) {
    elements += 2 * NumElements(m->layers().output_shape(i));
    if (elements > kMaxForwardElements) return;
  }
  Shape in{2};
  for (int64_t d : m->input_shape()) in.push_back(d);
  Tensor x(in);
  for (int64_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  if (!m->CheckInput(x).ok()) return;
  m->Forward(x, Mode::kEval);
  const Tensor& out = m->Forward(x, Mode::kTrain);
  Tensor grad(out.shape());
  for (int64_t i = 0; i < grad.size(); ++i) grad[i] = 0.01f * float(i % 7);
  m->ZeroGrad();
  m->Backward(grad);
  (void)m->CollectLayerStats(nullptr);
}

}  // namespace
}  // namespace nnlab::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  nnlab::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  nnlab::v1::ModelSpec spec;
  if (nnlab::fuzz::ParseAs(nnlab::fuzz::Format::kText, bytes, &spec)) {
    nnlab::fuzz::Exercise(spec);
  }
  if (nnlab::fuzz::ParseAs(nnlab::fuzz::Format::kJson, bytes, &spec)) {
    nnlab::fuzz::Exercise(spec);
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size,
                                          size_t max_size, unsigned int seed) {
  static nnlab::fuzz::ProtoMutator* mutator =
      new nnlab::fuzz::ProtoMutator({"dense0", "relu", "conv2d0", "x"});
  // Text inputs start with a field name or '#', JSON ones with '{'.
  const nnlab::fuzz::Format format = size > 0 && data[0] == '{'
                                         ? nnlab::fuzz::Format::kJson
                                         : nnlab::fuzz::Format::kText;
  return mutator->MutateInput(nnlab::v1::ModelSpec::default_instance(), format,
                              /*prefix=*/0, data, size, max_size, seed);
}

// Translates nnlab layers into standard ONNX operators (opset 13); see
// onnx_export.h for the graph's names and shapes.
#include "server/onnx_export.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/model/model.h"
#include "core/status_macros.h"
#include "onnx/onnx_pb.h"

namespace nnlab::server {
namespace {

constexpr absl::string_view kExportableKinds[] = {
    "dense",           "sigmoid",    "tanh",     "relu",       "leaky_relu",
    "dropout",         "batch_norm", "conv2d",   "max_pool2d", "avg_pool2d",
    "global_avg_pool", "flatten",    "residual", "rnn",        "lstm",
    "time_dense"};

// Builds one graph: each Emit* appends nodes and initializers and returns
// the name of the value it produced.
class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto* g, const WeightSet& w,
               absl::string_view prefix)
      : g_(g), prefix_(prefix) {
    for (const auto& [name, t] : w.params) tensors_[name] = &t;
    for (const auto& [name, t] : w.buffers) tensors_[name] = &t;
  }

  // Emits `specs` (names default to `name_prefix` + kind + index) on value
  // `x` of per-sample shape `in`; returns the last value's name.
  absl::StatusOr<std::string> EmitStack(const std::vector<LayerSpec>& specs,
                                        std::string x, Shape in,
                                        const std::string& name_prefix) {
    for (size_t i = 0; i < specs.size(); ++i) {
      const LayerSpec& s = specs[i];
      const std::string name = s.name.empty()
                                   ? absl::StrCat(name_prefix, s.kind, i)
                                   : absl::StrCat(name_prefix, s.name);
      if (!OnnxExportable(s.kind)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "layer ", name, " (", s.kind, ") cannot be exported to ONNX"));
      }
      auto out_shape = LayerStack::OutputShape({s}, in, name_prefix);
      if (!out_shape.ok()) return out_shape.status();
      auto y = EmitLayer(s, name, x, in, *out_shape);
      if (!y.ok()) return y.status();
      x = std::move(*y);
      in = *out_shape;
    }
    return x;
  }

 private:
  absl::StatusOr<std::string> EmitLayer(const LayerSpec& s,
                                        const std::string& name,
                                        const std::string& x, const Shape& in,
                                        const Shape& out) {
    const std::string& k = s.kind;
    if (k == "dropout") return x;  // Identity at inference.
    if (k == "sigmoid") return Unary("Sigmoid", name, x);
    if (k == "tanh") return Unary("Tanh", name, x);
    if (k == "relu") return Unary("Relu", name, x);
    if (k == "leaky_relu") {
      onnx::NodeProto* n = Node("LeakyRelu", name, {x});
      AttrFloat(n, "alpha", s.alpha);
      return n->output(0);
    }
    if (k == "flatten") {
      onnx::NodeProto* n = Node("Flatten", name, {x});
      AttrInt(n, "axis", 1);
      return n->output(0);
    }
    if (k == "dense") {
      NNLAB_ASSIGN_OR_RETURN(std::string w, Init(name + ".weight"));
      NNLAB_ASSIGN_OR_RETURN(std::string b, Init(name + ".bias"));
      // y = x W^T + b with W [units, n_in], exactly Gemm with transB.
      onnx::NodeProto* n = Node("Gemm", name, {x, w, b});
      AttrInt(n, "transB", 1);
      return n->output(0);
    }
    if (k == "time_dense") {
      // [N, T, I] x W^T [I, U] + b at every step: MatMul broadcasts over T.
      NNLAB_ASSIGN_OR_RETURN(const Tensor* w, Find(name + ".weight"));
      const std::string wt = name + ".weight_t";
      AddTransposed(wt, *w);
      NNLAB_ASSIGN_OR_RETURN(std::string b, Init(name + ".bias"));
      onnx::NodeProto* mm = Node("MatMul", name + "/matmul", {x, wt});
      return Node("Add", name, {mm->output(0), b})->output(0);
    }
    if (k == "batch_norm") {
      // Inference form: (x - running_mean) / sqrt(running_var + eps) * gamma
      // + beta, per feature or per channel (axis 1 in both layouts).
      NNLAB_ASSIGN_OR_RETURN(std::string gamma, Init(name + ".gamma"));
      NNLAB_ASSIGN_OR_RETURN(std::string beta, Init(name + ".beta"));
      NNLAB_ASSIGN_OR_RETURN(std::string mean, Init(name + ".running_mean"));
      NNLAB_ASSIGN_OR_RETURN(std::string var, Init(name + ".running_var"));
      onnx::NodeProto* n =
          Node("BatchNormalization", name, {x, gamma, beta, mean, var});
      AttrFloat(n, "epsilon", s.epsilon);
      return n->output(0);
    }
    if (k == "conv2d") {
      NNLAB_ASSIGN_OR_RETURN(std::string w, Init(name + ".weight"));
      NNLAB_ASSIGN_OR_RETURN(std::string b, Init(name + ".bias"));
      onnx::NodeProto* n = Node("Conv", name, {x, w, b});
      AttrInts(n, "kernel_shape", {s.kernel, s.kernel});
      AttrInts(n, "strides", {s.stride, s.stride});
      AttrInts(n, "pads", {s.padding, s.padding, s.padding, s.padding});
      return n->output(0);
    }
    if (k == "max_pool2d" || k == "avg_pool2d") {
      // nnlab's pools tile the input exactly (no padding, no remainder).
      onnx::NodeProto* n =
          Node(k == "max_pool2d" ? "MaxPool" : "AveragePool", name, {x});
      AttrInts(n, "kernel_shape", {s.kernel, s.kernel});
      AttrInts(n, "strides", {s.stride, s.stride});
      return n->output(0);
    }
    if (k == "global_avg_pool") {
      // [N, C, H, W] -> [N, C, 1, 1] -> [N, C].
      onnx::NodeProto* p = Node("GlobalAveragePool", name + "/pool", {x});
      onnx::NodeProto* n = Node("Flatten", name, {p->output(0)});
      AttrInt(n, "axis", 1);
      return n->output(0);
    }
    if (k == "residual") {
      NNLAB_ASSIGN_OR_RETURN(std::string body,
                             EmitStack(s.body, x, in, name + "."));
      std::string shortcut = x;
      if (in != out) {
        // The learned projection of x (residual.cc's ShortcutPlan): a 1x1
        // convolution with the stride that matches the body's output, or
        // a dense map for rank-1 features.
        const std::string proj = name + ".proj";
        NNLAB_ASSIGN_OR_RETURN(std::string w, Init(proj + ".weight"));
        NNLAB_ASSIGN_OR_RETURN(std::string b, Init(proj + ".bias"));
        if (in.size() == 1) {
          onnx::NodeProto* n = Node("Gemm", proj, {x, w, b});
          AttrInt(n, "transB", 1);
          shortcut = n->output(0);
        } else {
          int64_t stride = 1;
          while ((in[1] - 1) / stride + 1 != out[1] ||
                 (in[2] - 1) / stride + 1 != out[2]) {
            // Built models always have such a stride (residual.cc).
            NNLAB_CHECK(stride < std::max(in[1], in[2]));
            ++stride;
          }
          onnx::NodeProto* n = Node("Conv", proj, {x, w, b});
          AttrInts(n, "kernel_shape", {1, 1});
          AttrInts(n, "strides", {stride, stride});
          shortcut = n->output(0);
        }
      }
      return Node("Add", name, {shortcut, body})->output(0);
    }
    if (k == "rnn" || k == "lstm") return EmitRecurrent(s, name, x);
    return absl::FailedPreconditionError(
        absl::StrCat("layer ", name, " (", k, ") cannot be exported to ONNX"));
  }

  // nnlab's RNN and LSTM are exactly ONNX's RNN (tanh) and LSTM (sigmoid,
  // tanh, tanh; no peepholes) operators with zero initial state, once the
  // weights are rearranged: ONNX stacks the LSTM gates i, o, f, c where
  // nnlab stacks f, i, g (= c), o, and splits the bias into Wb and Rb (Rb
  // zero here). The operators are time-major: [N, T, F] is transposed in
  // and out.
  absl::StatusOr<std::string> EmitRecurrent(const LayerSpec& s,
                                            const std::string& name,
                                            const std::string& x) {
    const bool lstm = s.kind == "lstm";
    NNLAB_ASSIGN_OR_RETURN(const Tensor* w_ih, Find(name + ".weight_ih"));
    NNLAB_ASSIGN_OR_RETURN(const Tensor* w_hh, Find(name + ".weight_hh"));
    NNLAB_ASSIGN_OR_RETURN(const Tensor* bias, Find(name + ".bias"));
    const int64_t h = s.units, f = w_ih->dim(1);
    // ONNX block j comes from nnlab block kFrom[j].
    static constexpr int kLstmFrom[4] = {1, 3, 0, 2};
    static constexpr int kRnnFrom[1] = {0};
    const int* from = lstm ? kLstmFrom : kRnnFrom;
    const int gates = lstm ? 4 : 1;
    auto reorder = [&](const Tensor& t, int64_t cols, std::vector<float>* out) {
      const int64_t block = h * cols;
      for (int j = 0; j < gates; ++j) {
        const float* src = t.data() + from[j] * block;
        out->insert(out->end(), src, src + block);
      }
    };
    std::vector<float> w, r, b;
    reorder(*w_ih, f, &w);
    reorder(*w_hh, h, &r);
    reorder(*bias, 1, &b);
    b.resize(size_t(2 * gates * h), 0.0f);  // Rb = 0.
    AddInitializer(name + ".W", Shape{1, gates * h, f}, w.data());
    AddInitializer(name + ".R", Shape{1, gates * h, h}, r.data());
    AddInitializer(name + ".B", Shape{1, 2 * gates * h}, b.data());

    onnx::NodeProto* in = Node("Transpose", name + "/time_major", {x});
    AttrInts(in, "perm", {1, 0, 2});
    onnx::NodeProto* n =
        Node(lstm ? "LSTM" : "RNN", name,
             {in->output(0), name + ".W", name + ".R", name + ".B"});
    AttrInt(n, "hidden_size", h);
    n->add_output(name + ":h_last");  // Y_h [1, N, H].
    if (s.return_sequences) {
      // Y [T, 1, N, H] -> [T, N, H] -> [N, T, H].
      const std::string axes = name + "/axes";
      AddInt64s(axes, {1});
      onnx::NodeProto* sq =
          Node("Squeeze", name + "/squeeze", {n->output(0), axes});
      onnx::NodeProto* out =
          Node("Transpose", name + "/batch_major", {sq->output(0)});
      AttrInts(out, "perm", {1, 0, 2});
      return out->output(0);
    }
    const std::string axes = name + "/axes";
    AddInt64s(axes, {0});
    return Node("Squeeze", name + "/last", {n->output(1), axes})->output(0);
  }

  onnx::NodeProto* Node(const std::string& op, const std::string& name,
                        std::vector<std::string> inputs) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (auto& in : inputs) n->add_input(std::move(in));
    n->add_output(name + ":out");
    return n;
  }
  std::string Unary(const std::string& op, const std::string& name,
                    const std::string& x) {
    return Node(op, name, {x})->output(0);
  }
  static void AttrInt(onnx::NodeProto* n, const char* name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void AttrFloat(onnx::NodeProto* n, const char* name, float v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void AttrInts(onnx::NodeProto* n, const char* name,
                       std::initializer_list<int64_t> v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

  absl::StatusOr<const Tensor*> Find(const std::string& layer_param) {
    auto it = tensors_.find(prefix_ + layer_param);
    if (it == tensors_.end()) {
      return absl::InternalError(
          absl::StrCat("weights lack tensor ", prefix_, layer_param));
    }
    return it->second;
  }
  // Adds the named weight as an initializer; returns its value name.
  absl::StatusOr<std::string> Init(const std::string& layer_param) {
    NNLAB_ASSIGN_OR_RETURN(const Tensor* t, Find(layer_param));
    AddInitializer(layer_param, t->shape(), t->data());
    return layer_param;
  }
  void AddTransposed(const std::string& name, const Tensor& w) {
    const int64_t r = w.dim(0), c = w.dim(1);
    std::vector<float> t(size_t(r * c));
    for (int64_t i = 0; i < r; ++i) {
      for (int64_t j = 0; j < c; ++j)
        t[size_t(j * r + i)] = w.data()[i * c + j];
    }
    AddInitializer(name, Shape{c, r}, t.data());
  }
  void AddInt64s(const std::string& name, std::initializer_list<int64_t> v) {
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(int64_t(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
  }
  void AddInitializer(const std::string& name, const Shape& shape,
                      const float* data) {
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t d : shape) {
      t->add_dims(d);
      n *= d;
    }
    // raw_data is little-endian float32, as nnlab's tensors are in memory
    // on the little-endian machines it runs on.
    t->set_raw_data(std::string(reinterpret_cast<const char*>(data),
                                size_t(n) * sizeof(float)));
  }

  onnx::GraphProto* g_;
  std::string prefix_;
  std::map<std::string, const Tensor*> tensors_;
};

void SetValueInfo(onnx::ValueInfoProto* v, const std::string& name,
                  const Shape& per_sample) {
  v->set_name(name);
  onnx::TypeProto::Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("batch");
  for (int64_t d : per_sample) s->add_dim()->set_dim_value(d);
}

}  // namespace

bool OnnxExportable(absl::string_view kind) {
  for (absl::string_view k : kExportableKinds) {
    if (k == kind) return true;
  }
  return false;
}

absl::StatusOr<std::string> ExportOnnx(const ModelSpec& spec,
                                       const WeightSet& w,
                                       absl::string_view prefix,
                                       absl::string_view graph_name,
                                       bool classifier) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);  // 8 in libonnx 1.12.
  model.set_producer_name("nnlab");
  model.set_model_version(w.trained_steps);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);

  onnx::GraphProto* g = model.mutable_graph();
  g->set_name(std::string(graph_name));
  SetValueInfo(g->add_input(), "input", spec.input_shape);

  GraphBuilder builder(g, w, prefix);
  NNLAB_ASSIGN_OR_RETURN(
      std::string y,
      builder.EmitStack(spec.layers, "input", spec.input_shape, ""));
  NNLAB_ASSIGN_OR_RETURN(
      Shape out, LayerStack::OutputShape(spec.layers, spec.input_shape, ""));
  // The last value becomes "output" through an Identity, so that an empty
  // or dropout-only tail still has a node producing it.
  onnx::NodeProto* id = g->add_node();
  id->set_op_type("Identity");
  id->set_name("nnlab/output");
  id->add_input(y);
  id->add_output("output");
  SetValueInfo(g->add_output(), "output", out);
  if (classifier && out.size() == 1) {
    onnx::NodeProto* sm = g->add_node();
    sm->set_op_type("Softmax");
    sm->set_name("nnlab/probabilities");
    sm->add_input("output");
    sm->add_output("probabilities");
    onnx::AttributeProto* a = sm->add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(1);
    SetValueInfo(g->add_output(), "probabilities", out);
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    return absl::ResourceExhaustedError(
        "the ONNX model is too large to serialize (over 2 GiB)");
  }
  return bytes;
}

}  // namespace nnlab::server

#include "core/kernels/onednn_conv.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <string>

#include "core/kernels/blas.h"
#include "core/kernels/isa.h"
#include "core/status_macros.h"

namespace nnlab {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

ConvPath PathFromEnv() {
  const char* v = std::getenv("NNLAB_CONV");
  if (v == nullptr) return ConvPath::kAuto;
  if (std::strcmp(v, "im2col") == 0) return ConvPath::kIm2col;
  if (std::strcmp(v, "onednn") == 0) return ConvPath::kOneDnn;
  if (std::strcmp(v, "winograd") == 0) return ConvPath::kWinograd;
  return ConvPath::kAuto;
}

std::atomic<ConvPath>& PathSetting() {
  static std::atomic<ConvPath> path{PathFromEnv()};
  return path;
}

constexpr size_t kAlign = 64;

size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// The calling thread's workspace: the blocked copies and scratchpad of
// whichever convolution runs on it now. Shared by all layers (their calls
// on one thread never overlap), so it costs the largest call's size per
// thread rather than every layer's sum; grown during the first steps,
// then reused.
char* Workspace(size_t bytes) {
  struct Buffer {
    char* data = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (buffer.size < bytes) {
    std::free(buffer.data);
    buffer.data =
        static_cast<char*>(std::aligned_alloc(kAlign, AlignUp(bytes)));
    NNLAB_CHECK(buffer.data != nullptr);
    buffer.size = bytes;
  }
  return buffer.data;
}

// One tensor argument of a primitive: the caller's plain buffer and, when
// the primitive wants another layout, a buffer in that layout (in the
// workspace) with the reorder between them.
struct Port {
  int arg = 0;  // DNNL_ARG_*.
  bool input = true;
  memory user;            // Plain layout; its handle is set on every call.
  memory inner;           // The primitive's layout (== user when the same).
  dnnl::reorder reorder;  // user -> inner for inputs, back for outputs.
  bool reordered = false;
  size_t offset = 0;  // Of `inner` in the thread's workspace.
};

// One primitive (forward, backward-data or backward-weights) with its
// arguments, in the order its Run takes their buffers.
struct Call {
  static constexpr int kMaxPorts = 4;
  dnnl::primitive primitive;
  Port ports[kMaxPorts];
  int num_ports = 0;
  memory scratchpad;  // User-managed, after the blocked copies.
  size_t scratchpad_offset = 0;
  size_t bytes = 0;  // Of the workspace the call needs.
};

// An argument of a primitive for MakeCall: its id, nnlab's plain layout
// of it, and whether the primitive reads it.
struct ArgSpec {
  int arg;
  memory::desc plain;
  bool input;
};

// Builds `primitive` (from `pd`) with its ports and lays out its blocked
// copies, then its scratchpad, in the workspace from offset `base` on.
template <typename PrimitiveDesc>
Call MakeCall(const dnnl::engine& engine, const dnnl::primitive& primitive,
              const PrimitiveDesc& pd, std::initializer_list<ArgSpec> args,
              size_t base = 0) {
  Call call;
  call.primitive = primitive;
  size_t end = base;
  for (const ArgSpec& spec : args) {
    NNLAB_CHECK(call.num_ports < Call::kMaxPorts);
    Port& port = call.ports[call.num_ports++];
    port.arg = spec.arg;
    port.input = spec.input;
    port.user = memory(spec.plain, engine, DNNL_MEMORY_NONE);
    const memory::desc wanted = pd.query_md(dnnl::query::exec_arg_md, spec.arg);
    if (wanted == spec.plain) {
      port.inner = port.user;
      continue;
    }
    port.reordered = true;
    port.inner = memory(wanted, engine, DNNL_MEMORY_NONE);
    port.reorder = spec.input ? dnnl::reorder(port.user, port.inner)
                              : dnnl::reorder(port.inner, port.user);
    port.offset = end;
    end = AlignUp(end + wanted.get_size());
  }
  const memory::desc scratch = pd.scratchpad_desc();
  call.scratchpad_offset = end;
  call.bytes = end + AlignUp(scratch.get_size());
  call.scratchpad = memory(
      memory::desc(
          {static_cast<memory::dim>(std::max<size_t>(1, scratch.get_size()))},
          Dt::u8, Tag::x),
      engine, DNNL_MEMORY_NONE);
  return call;
}

// Runs `p` with `args` (C API: the arguments stay in the caller's array
// instead of a std::unordered_map built by the C++ API; oneDNN 2.6 still
// builds one inside, see bench/RESULTS.md).
void Execute(const dnnl::stream& stream, const dnnl::primitive& p, int nargs,
             const dnnl_exec_arg_t* args) {
  // The primitive and its arguments were checked when it was made, so a
  // failure here is oneDNN's own (out of memory) and no layer can recover
  // from it half-way through a pass.
  const dnnl_status_t status =
      dnnl_primitive_execute(p.get(), stream.get(), nargs, args);
  NNLAB_CHECK(status == dnnl_success);
}

// Runs `call` on the caller's buffers `data` (one per port, in order):
// reorders the inputs into the workspace, runs the primitive, reorders the
// outputs back. With `first_in_place`, the first port's blocked copy is
// already in the workspace (left there by the previous call).
void Run(const dnnl::stream& stream, Call& call,
         std::initializer_list<const void*> data, bool first_in_place = false) {
  NNLAB_CHECK(static_cast<int>(data.size()) == call.num_ports);
  char* ws = Workspace(call.bytes);
  dnnl_exec_arg_t args[Call::kMaxPorts + 1];
  int nargs = 0;
  const void* const* buffer = data.begin();
  for (int i = 0; i < call.num_ports; ++i) {
    Port& port = call.ports[i];
    port.user.set_data_handle(const_cast<void*>(buffer[i]));
    if (port.reordered) port.inner.set_data_handle(ws + port.offset);
    if (port.reordered && port.input && !(i == 0 && first_in_place)) {
      const dnnl_exec_arg_t reorder_args[] = {{DNNL_ARG_FROM, port.user.get()},
                                              {DNNL_ARG_TO, port.inner.get()}};
      Execute(stream, port.reorder, 2, reorder_args);
    }
    args[nargs++] = {port.arg, port.inner.get()};
  }
  call.scratchpad.set_data_handle(ws + call.scratchpad_offset);
  args[nargs++] = {DNNL_ARG_SCRATCHPAD, call.scratchpad.get()};
  Execute(stream, call.primitive, nargs, args);
  for (int i = 0; i < call.num_ports; ++i) {
    Port& port = call.ports[i];
    if (port.reordered && !port.input) {
      const dnnl_exec_arg_t reorder_args[] = {{DNNL_ARG_FROM, port.inner.get()},
                                              {DNNL_ARG_TO, port.user.get()}};
      Execute(stream, port.reorder, 2, reorder_args);
    }
  }
}

}  // namespace

ConvPath SetConvPath(ConvPath path) { return PathSetting().exchange(path); }
ConvPath CurrentConvPath() { return PathSetting().load(); }

struct OneDnnConv::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  Call fwd;          // x, w, b -> y.
  Call bwd_data;     // dy, w -> dx.
  Call bwd_weights;  // dy, x -> dw, db.
  // Both backward calls take dy first, so its blocked copy sits at the
  // start of the workspace in both; when they also want the same layout,
  // Backward reorders it once.
  bool share_dy = false;
  bool winograd = false;  // Some primitive runs Winograd's algorithm.
};

OneDnnConv::OneDnnConv(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OneDnnConv::~OneDnnConv() = default;

std::unique_ptr<OneDnnConv> OneDnnConv::Create(const ConvGeometry& g) {
  // Caps the ISA before oneDNN generates its first kernel, and keeps
  // oneDNN's OpenMP region on this thread.
  OneDnnSingleThreadHere();
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  const memory::dims x_dims{g.n, g.c, g.h, g.w}, w_dims{g.f, g.c, g.k, g.k},
      b_dims{g.f}, y_dims{g.n, g.f, g.ho, g.wo}, strides{g.s, g.s},
      pad_l{g.p, g.p};
  // Right padding: whatever the last window needs beyond the input.
  const memory::dims pad_r{(g.ho - 1) * g.s + g.k - g.h - g.p,
                           (g.wo - 1) * g.s + g.k - g.w - g.p};
  const memory::desc x_plain(x_dims, Dt::f32, Tag::nchw),
      w_plain(w_dims, Dt::f32, Tag::oihw), b_plain(b_dims, Dt::f32, Tag::x),
      y_plain(y_dims, Dt::f32, Tag::nchw);
  const memory::desc x_any(x_dims, Dt::f32, Tag::any),
      w_any(w_dims, Dt::f32, Tag::any), y_any(y_dims, Dt::f32, Tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // Winograd's F(4x4, 3x3) (oneDNN has it for 3x3 stride 1 with AVX-512)
  // does 2-4x fewer multiplications than the direct convolution; measured
  // on resnet-small's shapes at batch 64 (one thread, AVX-512): forward
  // and input gradient 10-15% faster at 16 and 32 channels, 33% at 64; the
  // weight gradient 26% faster at 16 channels, 11-14% slower at 32, 9% faster
  // at 64. Each primitive falls back to the direct convolution where
  // oneDNN has no Winograd kernel for it. Not for channel counts outside
  // its blocks of 16: it pads them, and resnet-small's 1-channel stem ran
  // 5-7x slower that way.
  const ConvPath path = CurrentConvPath();
  const bool winograd =
      (path == ConvPath::kAuto || path == ConvPath::kWinograd) &&
      g.c % 16 == 0 && g.f % 16 == 0;
  // make(algorithm) for Winograd, else (or where that throws) direct.
  auto with_best_algorithm = [&](const auto& make) {
    if (winograd) {
      try {
        return make(dnnl::algorithm::convolution_winograd);
      } catch (const dnnl::error&) {
      }
    }
    return make(dnnl::algorithm::convolution_direct);
  };
  try {
    const auto fwd_pd = with_best_algorithm([&](dnnl::algorithm alg) {
      return dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                          alg, x_any, w_any, b_plain, y_any,
                                          strides, pad_l, pad_r),
          attr, m.engine);
    });
    const auto bd_pd = with_best_algorithm([&](dnnl::algorithm alg) {
      return dnnl::convolution_backward_data::primitive_desc(
          dnnl::convolution_backward_data::desc(alg, x_any, w_any, y_any,
                                                strides, pad_l, pad_r),
          attr, m.engine, fwd_pd);
    });
    const auto bw_pd = with_best_algorithm([&](dnnl::algorithm alg) {
      return dnnl::convolution_backward_weights::primitive_desc(
          dnnl::convolution_backward_weights::desc(
              alg, x_any, w_any, b_plain, y_any, strides, pad_l, pad_r),
          attr, m.engine, fwd_pd);
    });
    for (const char* impl : {fwd_pd.impl_info_str(), bd_pd.impl_info_str(),
                             bw_pd.impl_info_str()}) {
      m.winograd = m.winograd || std::strstr(impl, "wino") != nullptr;
    }
    m.fwd = MakeCall(m.engine, dnnl::convolution_forward(fwd_pd), fwd_pd,
                     {{DNNL_ARG_SRC, x_plain, true},
                      {DNNL_ARG_WEIGHTS, w_plain, true},
                      {DNNL_ARG_BIAS, b_plain, true},
                      {DNNL_ARG_DST, y_plain, false}});
    m.bwd_data =
        MakeCall(m.engine, dnnl::convolution_backward_data(bd_pd), bd_pd,
                 {{DNNL_ARG_DIFF_DST, y_plain, true},
                  {DNNL_ARG_WEIGHTS, w_plain, true},
                  {DNNL_ARG_DIFF_SRC, x_plain, false}});
    m.bwd_weights =
        MakeCall(m.engine, dnnl::convolution_backward_weights(bw_pd), bw_pd,
                 {{DNNL_ARG_DIFF_DST, y_plain, true},
                  {DNNL_ARG_SRC, x_plain, true},
                  {DNNL_ARG_DIFF_WEIGHTS, w_plain, false},
                  {DNNL_ARG_DIFF_BIAS, b_plain, false}});
    const Port &bw_dy = m.bwd_weights.ports[0], &bd_dy = m.bwd_data.ports[0];
    m.share_dy = bw_dy.reordered && bd_dy.reordered &&
                 bw_dy.inner.get_desc() == bd_dy.inner.get_desc();
  } catch (const dnnl::error&) {
    return nullptr;  // No implementation for this geometry.
  }
  return std::unique_ptr<OneDnnConv>(new OneDnnConv(std::move(impl)));
}

void OneDnnConv::Forward(const float* x, const float* w, const float* b,
                         float* y) {
  OneDnnSingleThreadHere();
  Run(impl_->stream, impl_->fwd, {x, w, b, y});
}

void OneDnnConv::BackwardData(const float* dy, const float* w, float* dx) {
  OneDnnSingleThreadHere();
  Run(impl_->stream, impl_->bwd_data, {dy, w, dx});
}

void OneDnnConv::BackwardWeights(const float* x, const float* dy, float* dw,
                                 float* db) {
  OneDnnSingleThreadHere();
  Run(impl_->stream, impl_->bwd_weights, {dy, x, dw, db});
}

void OneDnnConv::Backward(const float* x, const float* dy, const float* w,
                          float* dx, float* dw, float* db) {
  OneDnnSingleThreadHere();
  Impl& m = *impl_;
  // Grown here, not between the calls: that would lose the copy of dy.
  Workspace(std::max(m.bwd_weights.bytes, m.bwd_data.bytes));
  Run(m.stream, m.bwd_weights, {dy, x, dw, db});
  if (dx != nullptr) Run(m.stream, m.bwd_data, {dy, w, dx}, m.share_dy);
}

bool OneDnnConv::winograd() const { return impl_->winograd; }

int64_t OneDnnConv::workspace_bytes() const {
  const Impl& m = *impl_;
  return static_cast<int64_t>(
      std::max({m.fwd.bytes, m.bwd_data.bytes, m.bwd_weights.bytes}));
}

struct OneDnnConvChain::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  struct Step {
    Call call;  // x or src slot, weights, bias -> dst slot.
    int src, dst;
  };
  std::vector<Step> steps;
  std::vector<size_t> slot_offset;  // In the workspace, before the calls'.
  int out_slot = 0;
  memory out_inner, out_user;  // out_slot's last layout, and plain NCHW.
  dnnl::reorder out_reorder;
  bool out_reordered = false;
  size_t out_bytes = 0;
  size_t bytes = 0;  // Of the workspace a Run needs.
};

OneDnnConvChain::OneDnnConvChain(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
OneDnnConvChain::~OneDnnConvChain() = default;

std::unique_ptr<OneDnnConvChain> OneDnnConvChain::Create(
    const std::vector<ChainConv>& convs, int out_slot) {
  OneDnnSingleThreadHere();
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.out_slot = out_slot;
  int slots = out_slot + 1;
  for (const ChainConv& c : convs)
    slots = std::max({slots, c.src + 1, c.dst + 1});
  // Each slot's layout as the walk goes (a slot may be rewritten in another
  // layout), its largest size, and each step's source and output layouts.
  std::vector<memory::desc> layout(slots);
  std::vector<bool> written(slots, false);
  std::vector<size_t> slot_bytes(slots, 0);
  std::vector<dnnl::convolution_forward::primitive_desc> pds;
  std::vector<memory::desc> src_md, dst_md, w_md;
  memory::desc out_plain;
  // Results in channel blocks of the vector width. Left to choose (`any`),
  // oneDNN 2.6 picks its brgconv implementation on nhwc for a convolution
  // with post-operations, which measured 1.1-2.7x slower than its direct
  // JIT convolution on these blocks for resnet-small's shapes
  // (kernels_bench BM_ResnetSmallForward).
  const Tag blocked = MaxIsa() >= Isa::kAvx512 ? Tag::nChw16c : Tag::nChw8c;
  try {
    for (const ChainConv& c : convs) {
      const ConvGeometry& g = c.g;
      const memory::dims x_dims{g.n, g.c, g.h, g.w}, w_dims{g.f, g.c, g.k, g.k},
          y_dims{g.n, g.f, g.ho, g.wo}, strides{g.s, g.s}, pad_l{g.p, g.p},
          pad_r{(g.ho - 1) * g.s + g.k - g.h - g.p,
                (g.wo - 1) * g.s + g.k - g.w - g.p};
      const bool sum = std::find(c.post.begin(), c.post.end(),
                                 ChainConv::Post::kSum) != c.post.end();
      if ((c.src >= 0 && !written[c.src]) || (sum && !written[c.dst]) ||
          c.src == c.dst) {
        return nullptr;
      }
      const memory::desc x_plain(x_dims, Dt::f32, Tag::nchw);
      dnnl::post_ops ops;
      for (ChainConv::Post p : c.post) {
        if (p == ChainConv::Post::kRelu) {
          ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        } else {
          ops.append_sum(1.0f);
        }
      }
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      attr.set_post_ops(ops);
      auto make = [&](const memory::desc& src, const memory::desc& dst) {
        return dnnl::convolution_forward::primitive_desc(
            dnnl::convolution_forward::desc(
                dnnl::prop_kind::forward_inference,
                dnnl::algorithm::convolution_direct, src,
                memory::desc(w_dims, Dt::f32, Tag::any),
                memory::desc({g.f}, Dt::f32, Tag::x), dst, strides, pad_l,
                pad_r),
            attr, m.engine);
      };
      // Layouts to try, in order, until one has a JIT kernel: where the
      // blocks have none (a few-channel input below AVX2), a layout oneDNN
      // picks for the input, then for the output too, is faster than its
      // reference loops.
      const memory::desc any_x(x_dims, Dt::f32, Tag::any),
          any_y(y_dims, Dt::f32, Tag::any), blocked_y(y_dims, Dt::f32, blocked);
      const memory::desc src = c.src < 0 ? x_plain : layout[c.src];
      const memory::desc dst = sum ? layout[c.dst] : blocked_y;
      const std::pair<memory::desc, memory::desc> tries[] = {
          {src, dst},
          {c.src < 0 ? any_x : src, dst},
          {c.src < 0 ? any_x : src, sum ? dst : any_y}};
      dnnl::convolution_forward::primitive_desc pd;
      bool found = false;
      for (const auto& [try_src, try_dst] : tries) {
        dnnl::convolution_forward::primitive_desc candidate;
        try {
          candidate = make(try_src, try_dst);
        } catch (const dnnl::error&) {
          continue;
        }
        const bool ref =
            std::string(candidate.impl_info_str()).rfind("ref", 0) == 0;
        if (!found || !ref) pd = candidate;
        found = true;
        if (!ref) break;
      }
      if (!found) return nullptr;
      pds.push_back(pd);
      src_md.push_back(c.src < 0 ? x_plain : layout[c.src]);
      w_md.push_back(memory::desc(w_dims, Dt::f32, Tag::oihw));
      // A sum adds into what the slot holds, in the layout it holds it.
      if (sum && !(pds.back().dst_desc() == layout[c.dst])) return nullptr;
      layout[c.dst] = pds.back().dst_desc();
      written[c.dst] = true;
      dst_md.push_back(layout[c.dst]);
      slot_bytes[c.dst] = std::max(slot_bytes[c.dst], layout[c.dst].get_size());
      if (c.dst == out_slot) {
        out_plain = memory::desc(y_dims, Dt::f32, Tag::nchw);
      }
    }
    if (!written[out_slot]) return nullptr;
    size_t end = 0;
    for (int s = 0; s < slots; ++s) {
      m.slot_offset.push_back(end);
      end = AlignUp(end + slot_bytes[s]);
    }
    m.bytes = end;
    for (size_t i = 0; i < convs.size(); ++i) {
      const memory::desc bias({convs[i].g.f}, Dt::f32, Tag::x);
      Impl::Step step{
          MakeCall(m.engine, dnnl::convolution_forward(pds[i]), pds[i],
                   {{DNNL_ARG_SRC, src_md[i], true},
                    {DNNL_ARG_WEIGHTS, w_md[i], true},
                    {DNNL_ARG_BIAS, bias, true},
                    {DNNL_ARG_DST, dst_md[i], false}},
                   end),
          convs[i].src, convs[i].dst};
      m.bytes = std::max(m.bytes, step.call.bytes);
      m.steps.push_back(std::move(step));
    }
    m.out_user = memory(out_plain, m.engine, DNNL_MEMORY_NONE);
    m.out_inner = memory(layout[out_slot], m.engine, DNNL_MEMORY_NONE);
    m.out_reordered = !(layout[out_slot] == out_plain);
    m.out_bytes = out_plain.get_size();
    if (m.out_reordered) {
      m.out_reorder = dnnl::reorder(m.out_inner, m.out_user);
    }
  } catch (const dnnl::error&) {
    return nullptr;  // No implementation for some step.
  }
  return std::unique_ptr<OneDnnConvChain>(new OneDnnConvChain(std::move(impl)));
}

void OneDnnConvChain::Run(const float* x, const float* const* weights,
                          const float* const* biases, float* y) {
  OneDnnSingleThreadHere();
  Impl& m = *impl_;
  // Grown once here: growing between steps would lose the slots.
  char* ws = Workspace(m.bytes);
  for (size_t i = 0; i < m.steps.size(); ++i) {
    Impl::Step& step = m.steps[i];
    const void* src = step.src < 0 ? static_cast<const void*>(x)
                                   : ws + m.slot_offset[step.src];
    nnlab::Run(m.stream, step.call,
               {src, weights[i], biases[i], ws + m.slot_offset[step.dst]});
  }
  char* out = ws + m.slot_offset[m.out_slot];
  if (!m.out_reordered) {
    std::memcpy(y, out, m.out_bytes);
    return;
  }
  m.out_inner.set_data_handle(out);
  m.out_user.set_data_handle(y);
  const dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, m.out_inner.get()},
                                  {DNNL_ARG_TO, m.out_user.get()}};
  Execute(m.stream, m.out_reorder, 2, args);
}

}  // namespace nnlab

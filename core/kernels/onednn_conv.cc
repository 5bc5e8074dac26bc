#include "core/kernels/onednn_conv.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <vector>

#include "core/kernels/blas.h"
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
  return ConvPath::kAuto;
}

std::atomic<ConvPath>& PathSetting() {
  static std::atomic<ConvPath> path{PathFromEnv()};
  return path;
}

// One tensor argument of a primitive: the caller's plain buffer and, when
// the primitive wants another layout, a buffer in that layout with the
// reorder between them.
struct Port {
  memory user;   // Plain layout; its handle is set on every call.
  memory inner;  // The primitive's layout (== user when the same).
  dnnl::reorder to_inner, from_inner;
  bool reordered = false;
  size_t offset = 0;  // Of `inner` in the thread's workspace.
};

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

Port MakePort(const dnnl::engine& engine, const memory::desc& plain,
              const memory::desc& wanted, bool input) {
  Port port;
  port.user = memory(plain, engine, DNNL_MEMORY_NONE);
  if (wanted == plain) {
    port.inner = port.user;
    return port;
  }
  port.reordered = true;
  port.inner = memory(wanted, engine, DNNL_MEMORY_NONE);  // In Workspace.
  if (input) {
    port.to_inner = dnnl::reorder(port.user, port.inner);
  } else {
    port.from_inner = dnnl::reorder(port.inner, port.user);
  }
  return port;
}

}  // namespace

ConvPath SetConvPath(ConvPath path) { return PathSetting().exchange(path); }
ConvPath CurrentConvPath() { return PathSetting().load(); }

struct OneDnnConv::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // Forward: x, w, b -> y.
  dnnl::convolution_forward fwd;
  Port fwd_x, fwd_w, fwd_b, fwd_y;
  // Backward-data: dy, w -> dx.
  dnnl::convolution_backward_data bwd_data;
  Port bd_dy, bd_w, bd_dx;
  // Backward-weights: x, dy -> dw, db.
  dnnl::convolution_backward_weights bwd_weights;
  Port bw_x, bw_dy, bw_dw, bw_db;
  // The primitives' scratchpad, in the workspace after the ports'
  // blocked copies; per primitive, the bytes its call needs.
  memory scratchpad;
  size_t fwd_bytes = 0, bd_bytes = 0, bw_bytes = 0;

  // Runs `p` with `args` (C API: the arguments stay in this stack array
  // instead of a heap-built std::unordered_map).
  void Run(const dnnl::primitive& p,
           std::initializer_list<dnnl_exec_arg_t> args) {
    dnnl_primitive_execute(p.get(), stream.get(), static_cast<int>(args.size()),
                           args.begin());
  }
  // Points the blocked copies of `ports` and the scratchpad at the
  // calling thread's workspace (`bytes` of it).
  void Place(std::initializer_list<Port*> ports, size_t bytes) {
    char* ws = Workspace(bytes);
    size_t end = 0;
    for (Port* port : ports) {
      if (!port->reordered) continue;
      port->inner.set_data_handle(ws + port->offset);
      end = std::max(end,
                     AlignUp(port->offset + port->inner.get_desc().get_size()));
    }
    scratchpad.set_data_handle(ws + end);
  }
  void In(Port& port, const void* data) {
    port.user.set_data_handle(const_cast<void*>(data));
    if (port.reordered) {
      Run(port.to_inner,
          {{DNNL_ARG_FROM, port.user.get()}, {DNNL_ARG_TO, port.inner.get()}});
    }
  }
  void Bind(Port& port, void* data) { port.user.set_data_handle(data); }
  void Out(Port& port) {
    if (port.reordered) {
      Run(port.from_inner,
          {{DNNL_ARG_FROM, port.inner.get()}, {DNNL_ARG_TO, port.user.get()}});
    }
  }
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
  try {
    dnnl::convolution_forward::primitive_desc fwd_pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct,
                                        x_any, w_any, b_plain, y_any, strides,
                                        pad_l, pad_r),
        attr, m.engine);
    dnnl::convolution_backward_data::primitive_desc bd_pd(
        dnnl::convolution_backward_data::desc(
            dnnl::algorithm::convolution_direct, x_any, w_any, y_any, strides,
            pad_l, pad_r),
        attr, m.engine, fwd_pd);
    dnnl::convolution_backward_weights::primitive_desc bw_pd(
        dnnl::convolution_backward_weights::desc(
            dnnl::algorithm::convolution_direct, x_any, w_any, b_plain, y_any,
            strides, pad_l, pad_r),
        attr, m.engine, fwd_pd);
    m.fwd = dnnl::convolution_forward(fwd_pd);
    m.bwd_data = dnnl::convolution_backward_data(bd_pd);
    m.bwd_weights = dnnl::convolution_backward_weights(bw_pd);
    m.fwd_x = MakePort(m.engine, x_plain, fwd_pd.src_desc(), true);
    m.fwd_w = MakePort(m.engine, w_plain, fwd_pd.weights_desc(), true);
    m.fwd_b = MakePort(m.engine, b_plain, fwd_pd.bias_desc(), true);
    m.fwd_y = MakePort(m.engine, y_plain, fwd_pd.dst_desc(), false);
    m.bd_dy = MakePort(m.engine, y_plain, bd_pd.diff_dst_desc(), true);
    m.bd_w = MakePort(m.engine, w_plain, bd_pd.weights_desc(), true);
    m.bd_dx = MakePort(m.engine, x_plain, bd_pd.diff_src_desc(), false);
    m.bw_x = MakePort(m.engine, x_plain, bw_pd.src_desc(), true);
    m.bw_dy = MakePort(m.engine, y_plain, bw_pd.diff_dst_desc(), true);
    m.bw_dw = MakePort(m.engine, w_plain, bw_pd.diff_weights_desc(), false);
    m.bw_db = MakePort(m.engine, b_plain, bw_pd.diff_bias_desc(), false);
    // Lays out each call's blocked copies, then its scratchpad.
    auto lay_out = [](std::initializer_list<Port*> ports,
                      const memory::desc& scratch) {
      size_t end = 0;
      for (Port* port : ports) {
        if (!port->reordered) continue;
        port->offset = end;
        end = AlignUp(end + port->inner.get_desc().get_size());
      }
      return end + AlignUp(scratch.get_size());
    };
    m.fwd_bytes = lay_out({&m.fwd_x, &m.fwd_w, &m.fwd_b, &m.fwd_y},
                          fwd_pd.scratchpad_desc());
    m.bd_bytes =
        lay_out({&m.bd_dy, &m.bd_w, &m.bd_dx}, bd_pd.scratchpad_desc());
    m.bw_bytes = lay_out({&m.bw_x, &m.bw_dy, &m.bw_dw, &m.bw_db},
                         bw_pd.scratchpad_desc());
    const size_t scratch = std::max({fwd_pd.scratchpad_desc().get_size(),
                                     bd_pd.scratchpad_desc().get_size(),
                                     bw_pd.scratchpad_desc().get_size()});
    m.scratchpad = memory(
        memory::desc({static_cast<memory::dim>(std::max<size_t>(1, scratch))},
                     Dt::u8, Tag::x),
        m.engine, DNNL_MEMORY_NONE);
  } catch (const dnnl::error&) {
    return nullptr;  // No implementation for this geometry.
  }
  return std::unique_ptr<OneDnnConv>(new OneDnnConv(std::move(impl)));
}

void OneDnnConv::Forward(const float* x, const float* w, const float* b,
                         float* y) {
  Impl& m = *impl_;
  OneDnnSingleThreadHere();
  m.Place({&m.fwd_x, &m.fwd_w, &m.fwd_b, &m.fwd_y}, m.fwd_bytes);
  m.In(m.fwd_x, x);
  m.In(m.fwd_w, w);
  m.In(m.fwd_b, b);
  m.Bind(m.fwd_y, y);
  m.Run(m.fwd, {{DNNL_ARG_SRC, m.fwd_x.inner.get()},
                {DNNL_ARG_WEIGHTS, m.fwd_w.inner.get()},
                {DNNL_ARG_BIAS, m.fwd_b.inner.get()},
                {DNNL_ARG_DST, m.fwd_y.inner.get()},
                {DNNL_ARG_SCRATCHPAD, m.scratchpad.get()}});
  m.Out(m.fwd_y);
}

void OneDnnConv::BackwardData(const float* dy, const float* w, float* dx) {
  Impl& m = *impl_;
  OneDnnSingleThreadHere();
  m.Place({&m.bd_dy, &m.bd_w, &m.bd_dx}, m.bd_bytes);
  m.In(m.bd_dy, dy);
  m.In(m.bd_w, w);
  m.Bind(m.bd_dx, dx);
  m.Run(m.bwd_data, {{DNNL_ARG_DIFF_DST, m.bd_dy.inner.get()},
                     {DNNL_ARG_WEIGHTS, m.bd_w.inner.get()},
                     {DNNL_ARG_DIFF_SRC, m.bd_dx.inner.get()},
                     {DNNL_ARG_SCRATCHPAD, m.scratchpad.get()}});
  m.Out(m.bd_dx);
}

void OneDnnConv::BackwardWeights(const float* x, const float* dy, float* dw,
                                 float* db) {
  Impl& m = *impl_;
  OneDnnSingleThreadHere();
  m.Place({&m.bw_x, &m.bw_dy, &m.bw_dw, &m.bw_db}, m.bw_bytes);
  m.In(m.bw_x, x);
  m.In(m.bw_dy, dy);
  m.Bind(m.bw_dw, dw);
  m.Bind(m.bw_db, db);
  m.Run(m.bwd_weights, {{DNNL_ARG_SRC, m.bw_x.inner.get()},
                        {DNNL_ARG_DIFF_DST, m.bw_dy.inner.get()},
                        {DNNL_ARG_DIFF_WEIGHTS, m.bw_dw.inner.get()},
                        {DNNL_ARG_DIFF_BIAS, m.bw_db.inner.get()},
                        {DNNL_ARG_SCRATCHPAD, m.scratchpad.get()}});
  m.Out(m.bw_dw);
  m.Out(m.bw_db);
}

int64_t OneDnnConv::workspace_bytes() const {
  const Impl& m = *impl_;
  return static_cast<int64_t>(std::max({m.fwd_bytes, m.bd_bytes, m.bw_bytes}));
}

}  // namespace nnlab

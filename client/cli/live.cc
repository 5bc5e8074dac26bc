#include "client/cli/live.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/timesteps.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace nnlab::cli {
namespace {

std::string Num(double v) {
  if (!std::isfinite(v))
    return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  return absl::StrFormat("%.4g", v);
}

std::string Sci(double v) {
  if (!std::isfinite(v)) return Num(v);
  return absl::StrFormat("%.1e", v);
}

// Display width of a UTF-8 string (every code point counts one column).
int Columns(const std::string& s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

std::string Pad(const std::string& s, int width) {
  int w = Columns(s);
  return w >= width ? s : s + std::string(width - w, ' ');
}

// Truncates to `width` columns.
std::string Fit(const std::string& s, int width) {
  if (Columns(s) <= width) return s;
  std::string out;
  int n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xc0) != 0x80 && ++n > width) break;
    out += s[i];
  }
  return out;
}

// A horizontal bar of `fraction` of `width` cells, with eighth-cell
// resolution in Unicode.
std::string Bar(double fraction, int width, bool unicode, bool track) {
  fraction = std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0);
  std::string out;
  if (!unicode) {
    int full = static_cast<int>(std::lround(fraction * width));
    out.append(full, '#');
    out.append(width - full, track ? '-' : ' ');
    return out;
  }
  static const char* kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  int eighths = static_cast<int>(std::lround(fraction * width * 8));
  int full = eighths / 8, rest = eighths % 8;
  for (int i = 0; i < full; ++i) out += "█";
  int used = full;
  if (rest > 0 && used < width) {
    out += kEighths[rest];
    ++used;
  }
  for (int i = used; i < width; ++i) out += track ? "░" : " ";
  return out;
}

// What saturated_fraction counts for a layer: dead units after a ReLU,
// saturated ones after a sigmoid or tanh. An activation whose kind the
// server does not say (SATURATION_UNSPECIFIED) reads "sat".
const char* UnitsWord(const LiveViewOptions& o, const std::string& layer) {
  auto it = o.activation_after.find(layer);
  if (it == o.activation_after.end()) return "sat/dead";
  return it->second == v1::SATURATION_DEAD ? "dead" : "sat";
}

struct LayerRow {
  std::string name, kind;
  double speed = 0;       // grad_bias_norm of the latest event
  double saturated = -1;  // saturated/dead fraction
  // The latest stats with ||dE/dh_t|| (recurrent layers).
  v1::LayerStats timesteps;
};

// Everything the live view shows, folded from the events.
struct LiveState {
  v1::Job job;
  v1::MetricEvent last_train;
  bool have_train = false;
  v1::MetricEvent last_eval;
  bool have_eval = false;
  double d_loss = NAN, g_loss = NAN, d_real = NAN, d_fake = NAN;
  int64_t gan_step = 0;
  std::vector<LayerRow> layers;
  // Decades spanned by every learning speed seen so far (the axis only
  // grows, so bars stay comparable over the run).
  double log_lo = INFINITY, log_hi = -INFINITY;
  int64_t step = 0;
  int epoch = 0;
  double samples_per_sec = 0;
  int64_t dropped = 0;
  std::string state_message;

  void Add(const v1::MetricEvent& e) {
    step = std::max(step, e.step());
    epoch = std::max(epoch, e.epoch());
    dropped += e.dropped_events();
    switch (e.phase()) {
      case v1::PHASE_TRAIN:
        last_train = e;
        have_train = true;
        if (e.samples_per_sec() > 0) samples_per_sec = e.samples_per_sec();
        break;
      case v1::PHASE_EVAL:
        last_eval = e;
        have_eval = true;
        break;
      case v1::PHASE_GAN_D:
        d_loss = e.loss();
        d_real = e.d_real();
        d_fake = e.d_fake();
        gan_step = e.step();
        if (e.samples_per_sec() > 0) samples_per_sec = e.samples_per_sec();
        break;
      case v1::PHASE_GAN_G:
        g_loss = e.loss();
        gan_step = e.step();
        break;
      case v1::PHASE_STATE:
        job.set_state(e.job_state());
        state_message = e.message();
        break;
      default:
        break;
    }
    for (const v1::LayerStats& l : e.layers()) {
      auto it =
          std::find_if(layers.begin(), layers.end(),
                       [&](const LayerRow& r) { return r.name == l.name(); });
      if (it == layers.end()) {
        layers.emplace_back();
        layers.back().name = l.name();
        layers.back().kind = l.kind();
        it = std::prev(layers.end());
      }
      it->speed = l.grad_bias_norm();
      it->saturated = l.saturated_fraction();
      if (l.timestep_grad_norms_size() > 0) it->timesteps = l;
      if (l.grad_bias_norm() > 0 && std::isfinite(l.grad_bias_norm())) {
        double lg = std::log10(l.grad_bias_norm());
        log_lo = std::min(log_lo, std::floor(lg));
        log_hi = std::max(log_hi, std::ceil(lg));
        if (log_hi <= log_lo) log_hi = log_lo + 1;
      }
    }
  }

  std::vector<std::string> Render(const LiveViewOptions& o) const {
    const int cols = std::max(40, o.columns);
    std::vector<std::string> lines;
    const v1::JobSpec& spec = job.spec();
    lines.push_back(absl::StrCat("job ", job.job_id(), "  model ",
                                 spec.model_id(), "  dataset ", spec.dataset(),
                                 "  ", JobStateName(job.state())));

    // Progress: epoch, bar, percent, step, throughput, ETA.
    const int epochs = spec.epochs() > 0 ? spec.epochs() : 1;
    const int64_t total = job.total_steps();
    const double frac =
        total > 0 ? static_cast<double>(step) / static_cast<double>(total) : 0;
    const int64_t batch = spec.batch_size() > 0 ? spec.batch_size() : 32;
    std::string eta = "--:--";
    if (samples_per_sec > 0 && total > 0) {
      eta = FormatDuration(
          static_cast<double>(std::max<int64_t>(total - step, 0)) *
          static_cast<double>(batch) / samples_per_sec);
    }
    std::string head =
        absl::StrFormat("epoch %d/%d ", std::min(epoch + 1, epochs), epochs);
    std::string tail =
        absl::StrFormat(" %3.0f%%  step %d/%d  %.0f samples/s  ETA %s",
                        frac * 100, step, total, samples_per_sec, eta);
    // The last column stays empty so that no line wraps.
    int bar_width = std::max(10, cols - 1 - Columns(head) - Columns(tail) - 2);
    bar_width = std::min(bar_width, 40);
    lines.push_back(head + "[" + Bar(frac, bar_width, o.unicode, true) + "]" +
                    tail);

    if (have_train) {
      const v1::MetricEvent& t = last_train;
      std::string line = absl::StrCat("train  loss ", Num(t.loss()));
      if (t.accuracy() >= 0)
        absl::StrAppend(&line, "  accuracy ", Num(t.accuracy()));
      absl::StrAppend(&line, "  lr ", Num(t.learning_rate()), "  |grad| ",
                      Num(t.grad_norm()));
      lines.push_back(line);
    }
    if (gan_step > 0) {
      lines.push_back(absl::StrCat(
          "GAN    D loss ", Num(d_loss), "  G loss ", Num(g_loss), "  D(x) ",
          Num(d_real), "  D(G(z)) ", Num(d_fake), "  (step ", gan_step, ")"));
    }
    if (have_eval) {
      std::string line = absl::StrCat("test   loss ", Num(last_eval.loss()));
      if (last_eval.accuracy() >= 0) {
        absl::StrAppend(&line, "  accuracy ", Num(last_eval.accuracy()));
      }
      absl::StrAppend(&line, "  (step ", last_eval.step(), ")");
      lines.push_back(line);
    }

    if (!layers.empty()) {
      const bool have_axis = std::isfinite(log_lo);
      lines.push_back(absl::StrCat(
          o.unicode ? "learning speed ‖δˡ‖ per layer, log scale"
                    : "learning speed ||delta^l|| per layer, log scale",
          have_axis ? absl::StrFormat(" %.0e .. %.0e", std::pow(10.0, log_lo),
                                      std::pow(10.0, log_hi))
                    : ""));
      size_t name_w = 6;
      for (const LayerRow& r : layers) name_w = std::max(name_w, r.name.size());
      name_w = std::min<size_t>(name_w, 20);
      const int suffix_w = 25;  // "  1.2e-03  sat/dead  45%"
      int bw =
          std::clamp(cols - static_cast<int>(name_w) - 5 - suffix_w, 10, 60);
      for (const LayerRow& r : layers) {
        double f = 0;
        if (have_axis && r.speed > 0 && std::isfinite(r.speed)) {
          f = (std::log10(r.speed) - log_lo) / (log_hi - log_lo);
        }
        std::string line =
            absl::StrCat("  ",
                         Pad(Fit(r.name, static_cast<int>(name_w)),
                             static_cast<int>(name_w)),
                         " ", Bar(f, bw, o.unicode, false), "  ", Sci(r.speed));
        if (r.saturated >= 0) {
          absl::StrAppendFormat(&line, "  %s %3.0f%%", UnitsWord(o, r.name),
                                r.saturated * 100);
        }
        lines.push_back(line);
      }
      // Recurrent layers: ||dE/dh_t|| against t, one compact line each.
      for (const LayerRow& r : layers) {
        if (r.timesteps.timestep_grad_norms_size() == 0) continue;
        lines.push_back("  " + TimestepLine(r.timesteps, cols - 50, o.unicode));
      }
    }
    if (dropped > 0) {
      lines.push_back(absl::StrCat(
          "(", dropped, " events skipped: the terminal read too slowly)"));
    }
    if (!state_message.empty() && job.state() != v1::JOB_STATE_RUNNING) {
      lines.push_back(
          absl::StrCat(JobStateName(job.state()), ": ", state_message));
    }
    for (std::string& l : lines) l = Fit(l, cols - 1);
    return lines;
  }
};

class LiveView : public EventPrinter {
 public:
  LiveView(FILE* out, LiveViewOptions options) : out_(out), options_(options) {}

  void Begin(const v1::Job& job) override {
    state_.job = job;
    state_.step = job.step();
    std::fputs("\x1b[?25l", out_);  // hide the cursor while redrawing
    Draw();
  }
  void OnEvent(const v1::MetricEvent& e) override {
    state_.Add(e);
    state_.job.set_step(std::max(state_.job.step(), e.step()));
    const bool important =
        e.phase() == v1::PHASE_EVAL || e.phase() == v1::PHASE_STATE;
    auto now = std::chrono::steady_clock::now();
    if (important || now - last_draw_ >= std::chrono::duration<double>(
                                             options_.min_redraw_seconds)) {
      Draw();
    }
  }
  void End(const v1::Job& job) override {
    state_.job = job;
    state_.step = std::max(state_.step, job.step());
    if (job.has_last_eval() &&
        (!state_.have_eval ||
         job.last_eval().step() >= state_.last_eval.step())) {
      state_.last_eval.set_loss(job.last_eval().loss());
      state_.last_eval.set_accuracy(job.last_eval().accuracy());
      state_.last_eval.set_step(job.last_eval().step());
      state_.have_eval = true;
    }
    if (!job.failure_reason().empty())
      state_.state_message = job.failure_reason();
    Draw();
    std::fputs("\x1b[?25h", out_);
    std::fflush(out_);
  }

 private:
  void Draw() {
    std::vector<std::string> lines = state_.Render(options_);
    std::string frame;
    // Back to the first line of the previous frame, then overwrite each
    // line (clearing its rest) and clear lines the new frame no longer has.
    if (drawn_ > 0) absl::StrAppend(&frame, "\r\x1b[", drawn_, "A");
    for (const std::string& l : lines)
      absl::StrAppend(&frame, "\r", l, "\x1b[K\n");
    if (static_cast<int>(lines.size()) < drawn_) frame += "\x1b[J";
    drawn_ = static_cast<int>(lines.size());
    std::fputs(frame.c_str(), out_);
    std::fflush(out_);
    last_draw_ = std::chrono::steady_clock::now();
  }

  FILE* out_;
  LiveViewOptions options_;
  LiveState state_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

class PlainPrinter : public EventPrinter {
 public:
  PlainPrinter(FILE* out, PlainOptions o) : out_(out), o_(std::move(o)) {
    if (!o_.clock) {
      o_.clock = [] {
        return std::chrono::duration<double>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
      };
    }
  }
  void Begin(const v1::Job& job) override {
    std::fprintf(out_, "job %s: model %s, dataset %s, %lld steps, %s\n",
                 job.job_id().c_str(), job.spec().model_id().c_str(),
                 job.spec().dataset().c_str(),
                 static_cast<long long>(job.total_steps()),
                 JobStateName(job.state()).c_str());
    std::fflush(out_);
  }
  void OnEvent(const v1::MetricEvent& e) override {
    const bool step_line = e.phase() == v1::PHASE_TRAIN ||
                           e.phase() == v1::PHASE_GAN_D ||
                           e.phase() == v1::PHASE_GAN_G;
    if (step_line && o_.min_step_seconds > 0) {
      const double now = o_.clock();
      if (printed_any_ && now - last_printed_ < o_.min_step_seconds) {
        held_ = PlainLine(e);  // Shown if nothing newer comes.
        return;
      }
      printed_any_ = true;
      last_printed_ = now;
    }
    held_.clear();
    std::fprintf(out_, "%s\n", PlainLine(e).c_str());
    std::fflush(out_);
  }
  void End(const v1::Job& job) override {
    if (!held_.empty()) std::fprintf(out_, "%s\n", held_.c_str());
    held_.clear();
    std::string line =
        absl::StrCat("job ", job.job_id(), " ", JobStateName(job.state()),
                     " at step ", job.step());
    if (job.has_last_eval()) {
      absl::StrAppend(&line, ": test loss ", Num(job.last_eval().loss()));
      if (job.last_eval().accuracy() >= 0) {
        absl::StrAppendFormat(&line, ", accuracy %.4f",
                              job.last_eval().accuracy());
      }
      absl::StrAppend(&line, " (step ", job.last_eval().step(), ")");
    }
    if (!job.failure_reason().empty()) {
      absl::StrAppend(&line, ": ", job.failure_reason());
    }
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }

 private:
  FILE* out_;
  PlainOptions o_;
  bool printed_any_ = false;
  double last_printed_ = 0;
  std::string held_;  // The newest step line not printed yet.
};

std::string OneLineJson(const google::protobuf::Message& m) {
  std::string s;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  (void)google::protobuf::util::MessageToJsonString(m, &s, opts);
  return s;
}

class JsonPrinter : public EventPrinter {
 public:
  explicit JsonPrinter(FILE* out) : out_(out) {}
  // The job itself is printed by the caller when it starts the job; the
  // stream is events only, then the final job.
  void Begin(const v1::Job&) override {}
  void OnEvent(const v1::MetricEvent& e) override {
    std::fprintf(out_, "%s\n", OneLineJson(e).c_str());
    std::fflush(out_);
  }
  void End(const v1::Job& job) override {
    std::fprintf(out_, "%s\n", OneLineJson(job).c_str());
    std::fflush(out_);
  }

 private:
  FILE* out_;
};

}  // namespace

std::map<std::string, v1::SaturationKind> ActivationsAfter(
    const v1::Model& model) {
  std::map<std::string, v1::SaturationKind> out;
  std::string pending;  // last layer with parameters, no activation yet
  for (const v1::LayerInfo& l : model.layers()) {
    if (l.params_size() > 0) {
      pending = l.name();
    } else if (!pending.empty() && l.is_activation()) {
      // An old server sends no is_activation: no layer lands here, and the
      // view falls back to "sat/dead" (see live.h).
      out[pending] = l.saturation();
      pending.clear();
    }
  }
  return out;
}

std::string JobStateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  const std::string prefix = "JOB_STATE_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name.empty() ? absl::StrCat(static_cast<int>(state)) : name;
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) {
    return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  }
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

std::string PlainLine(const v1::MetricEvent& e) {
  std::string line;
  if (e.dropped_events() > 0) {
    absl::StrAppend(&line, "(", e.dropped_events(), " events skipped) ");
  }
  switch (e.phase()) {
    case v1::PHASE_TRAIN:
      absl::StrAppend(&line, "step ", e.step(), " epoch ", e.epoch(), " loss ",
                      Num(e.loss()));
      if (e.accuracy() >= 0)
        absl::StrAppend(&line, " accuracy ", Num(e.accuracy()));
      absl::StrAppend(&line, " lr ", Num(e.learning_rate()), " |grad| ",
                      Num(e.grad_norm()));
      if (e.samples_per_sec() > 0) {
        absl::StrAppendFormat(&line, " %.0f samples/s", e.samples_per_sec());
      }
      if (e.comm_seconds() > 0) {  // Distributed: the gradient allreduce.
        absl::StrAppendFormat(&line, " allreduce %.2fms",
                              e.comm_seconds() * 1000);
      }
      break;
    case v1::PHASE_EVAL:
      absl::StrAppend(&line, "eval step ", e.step(), " epoch ", e.epoch(),
                      " test loss ", Num(e.loss()));
      if (e.accuracy() >= 0)
        absl::StrAppend(&line, " accuracy ", Num(e.accuracy()));
      break;
    case v1::PHASE_GAN_D:
      absl::StrAppend(&line, "step ", e.step(), " epoch ", e.epoch(),
                      " D loss ", Num(e.loss()), " D(x) ", Num(e.d_real()),
                      " D(G(z)) ", Num(e.d_fake()));
      break;
    case v1::PHASE_GAN_G:
      absl::StrAppend(&line, "step ", e.step(), " epoch ", e.epoch(),
                      " G loss ", Num(e.loss()));
      break;
    case v1::PHASE_STATE:
      absl::StrAppend(&line, "state ", JobStateName(e.job_state()), " at step ",
                      e.step());
      if (!e.message().empty()) absl::StrAppend(&line, ": ", e.message());
      break;
    default:
      absl::StrAppend(&line, "event ", e.sequence(), " step ", e.step());
  }
  if (e.layers_size() > 0) {
    line += " |delta|";
    for (const v1::LayerStats& l : e.layers()) {
      absl::StrAppend(&line, " ", l.name(), "=", Sci(l.grad_bias_norm()));
    }
  }
  return line;
}

std::unique_ptr<EventPrinter> MakeLiveView(FILE* out, LiveViewOptions options) {
  return std::make_unique<LiveView>(out, options);
}
std::unique_ptr<EventPrinter> MakePlainPrinter(FILE* out,
                                               PlainOptions options) {
  return std::make_unique<PlainPrinter>(out, std::move(options));
}
std::unique_ptr<EventPrinter> MakeJsonPrinter(FILE* out) {
  return std::make_unique<JsonPrinter>(out);
}

std::string RenderLiveFrame(const v1::Job& job,
                            const std::vector<v1::MetricEvent>& events,
                            LiveViewOptions options) {
  LiveState state;
  state.job = job;
  state.step = job.step();
  for (const auto& e : events) state.Add(e);
  return absl::StrJoin(state.Render(options), "\n") + "\n";
}

}  // namespace nnlab::cli

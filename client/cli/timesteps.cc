#include "client/cli/timesteps.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nnlab::cli {
namespace {

std::string Sci(double v) { return absl::StrFormat("%.1e", v); }

}  // namespace

std::string TimestepLine(const v1::LayerStats& l, int width, bool unicode) {
  const int n = l.timestep_grad_norms_size();
  if (n == 0) return "";
  double lo = INFINITY, hi = 0;
  for (double v : l.timestep_grad_norms()) {
    if (v > 0 && std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const int last_t =
      l.timestep_indices_size() == n ? l.timestep_indices(n - 1) : n - 1;
  std::string head = absl::StrCat(
      l.name(), unicode ? " ‖dE/dhₜ‖ t=0.." : " |dE/dh_t| t=0..", last_t, " ");
  const int cells = std::clamp(width, 8, n);
  static const char* kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  static const char kAscii[] = " .:-=+*#%@";
  const int levels = unicode ? 8 : 10;
  std::string line = head;
  for (int c = 0; c < cells; ++c) {
    // Evenly resampled: cell c shows point round(c (n - 1) / (cells - 1)).
    const int i =
        cells == 1 ? 0
                   : int(std::lround(double(c) * (n - 1) / double(cells - 1)));
    const double v = l.timestep_grad_norms(i);
    int level = 0;
    if (v > 0 && std::isfinite(v) && hi > lo) {
      level =
          int(std::lround((std::log10(v) - std::log10(lo)) /
                          (std::log10(hi) - std::log10(lo)) * (levels - 1)));
    } else if (v > 0 && std::isfinite(v)) {
      level = levels - 1;
    } else if (!std::isfinite(v)) {
      line += "!";
      continue;
    }
    if (unicode) {
      line += kBlocks[std::clamp(level, 0, 7)];
    } else {
      line += kAscii[std::clamp(level, 0, 9)];
    }
  }
  if (hi > 0) absl::StrAppend(&line, " ", Sci(lo), "..", Sci(hi));
  return line;
}

void TimestepHistory::Add(const v1::MetricEvent& e) {
  if (e.phase() != v1::PHASE_TRAIN) return;
  for (const v1::LayerStats& l : e.layers()) {
    if (l.timestep_grad_norms_size() == 0) continue;
    auto it = std::find_if(layers.begin(), layers.end(),
                           [&](const Layer& x) { return x.name == l.name(); });
    if (it == layers.end()) {
      layers.push_back({l.name(), l.kind(), {}});
      it = std::prev(layers.end());
    }
    Series points;
    const bool indexed =
        l.timestep_indices_size() == l.timestep_grad_norms_size();
    for (int i = 0; i < l.timestep_grad_norms_size(); ++i) {
      const double v = l.timestep_grad_norms(i);
      if (!std::isfinite(v)) continue;
      points.emplace_back(indexed ? l.timestep_indices(i) : i, v);
    }
    it->steps.emplace_back(e.step(), std::move(points));
  }
}

std::vector<PlotPanel> TimestepPanels(
    const std::vector<TimestepHistory>& jobs) {
  std::vector<PlotPanel> panels;
  for (const TimestepHistory& job : jobs) {
    for (const TimestepHistory::Layer& layer : job.layers) {
      PlotPanel p;
      p.title = absl::StrCat(job.label, " ", layer.name, " (", layer.kind,
                             u8"): \u2016dE/dh_t\u2016 against t");
      p.x_label = "t";
      p.log_y = true;
      // Up to four recorded steps, evenly spread, first and last included.
      const size_t n = layer.steps.size();
      const size_t shown = std::min<size_t>(n, 4);
      size_t previous = n;
      for (size_t k = 0; k < shown; ++k) {
        const size_t i = shown == 1 ? 0 : k * (n - 1) / (shown - 1);
        if (i == previous) continue;
        previous = i;
        p.curves.emplace_back(absl::StrCat("step ", layer.steps[i].first),
                              layer.steps[i].second);
      }
      panels.push_back(std::move(p));
    }
  }
  return panels;
}

}  // namespace nnlab::cli

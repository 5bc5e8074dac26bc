#include "server/http/sweep_routes.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/sweep_labels.h"
#include "server/http/json.h"

namespace nnlab::server {
namespace {

std::string WithLabels(const v1::Sweep& s) {
  std::string out =
      absl::StrCat("{\"sweep\":", ProtoToJson(s), ",\"labels\":[");
  bool first = true;
  for (const std::string& l : SweepTrialLabels(s)) {
    absl::StrAppend(&out, first ? "" : ",", JsonString(l));
    first = false;
  }
  return out + "]}";
}

// One series (x, y) as it is collected.
struct Series {
  std::vector<int64_t> x;
  std::vector<double> y;
  void Add(int64_t step, double v) {
    // A resumed job repeats steps after its checkpoint: the later value
    // replaces the earlier ones, so steps stay increasing.
    while (!x.empty() && x.back() >= step) {
      x.pop_back();
      y.pop_back();
    }
    x.push_back(step);
    y.push_back(v);
  }
};

// The indexes kept of n points: every k-th, and the last.
std::vector<size_t> Kept(size_t n) {
  std::vector<size_t> out;
  const size_t stride = (n + kMaxCurvePoints - 1) / kMaxCurvePoints;
  for (size_t i = 0; i < n; i += std::max<size_t>(1, stride)) out.push_back(i);
  if (n > 0 && out.back() != n - 1) out.push_back(n - 1);
  return out;
}

std::string Number(double v) {
  return std::isfinite(v) ? absl::StrCat(v) : "null";
}

// "\"xname\":[...],\"yname\":[...]" with y2 (same x) if given.
std::string SeriesJson(const std::string& xname, const Series& s,
                       const std::string& yname,
                       const std::vector<double>* y2 = nullptr,
                       const std::string& y2name = "") {
  std::string xs, ys, y2s;
  for (size_t i : Kept(s.x.size())) {
    const char* sep = xs.empty() ? "" : ",";
    absl::StrAppend(&xs, sep, s.x[i]);
    absl::StrAppend(&ys, sep, Number(s.y[i]));
    if (y2 != nullptr) absl::StrAppend(&y2s, sep, Number((*y2)[i]));
  }
  std::string out =
      absl::StrCat("\"", xname, "\":[", xs, "],\"", yname, "\":[", ys, "]");
  if (y2 != nullptr) absl::StrAppend(&out, ",\"", y2name, "\":[", y2s, "]");
  return out;
}

}  // namespace

std::string SweepListJson(const SweepManager& sweeps) {
  std::string out = "{\"sweeps\":[";
  bool first = true;
  for (const v1::Sweep& s : sweeps.List()) {
    absl::StrAppend(&out, first ? "" : ",", WithLabels(s));
    first = false;
  }
  return out + "]}\n";
}

absl::StatusOr<std::string> SweepJson(const SweepManager& sweeps,
                                      const std::string& id) {
  absl::StatusOr<v1::Sweep> s = sweeps.Get(id);
  if (!s.ok()) return s.status();
  return WithLabels(*s) + "\n";
}

absl::StatusOr<std::string> SweepCurvesJson(const SweepManager& sweeps,
                                            JobManager& jobs,
                                            const std::string& id,
                                            const std::string& layer) {
  absl::StatusOr<v1::Sweep> sweep = sweeps.Get(id);
  if (!sweep.ok()) return sweep.status();
  const std::vector<std::string> labels = SweepTrialLabels(*sweep);
  struct Curves {
    int index = 0;
    std::string job_id;
    Series train_loss, test_acc, test_loss;
    std::map<std::string, Series> speed;  // By layer.
  };
  std::vector<Curves> trials;
  std::vector<std::string> layers;  // In the order first seen.
  for (int i = 0; i < sweep->trials_size(); ++i) {
    const v1::SweepTrial& t = sweep->trials(i);
    if (t.job_id().empty()) continue;
    Curves c;
    c.index = i;
    c.job_id = t.job_id();
    absl::StatusOr<std::unique_ptr<Watcher>> w =
        jobs.Watch(t.job_id(), Watcher::Options());
    if (absl::IsNotFound(w.status())) continue;  // Deleted with its model.
    if (!w.ok()) return w.status();
    v1::MetricEvent e;
    // What the history holds now; a running job's later events come with
    // the next request.
    while ((*w)->Next(absl::ZeroDuration(), &e) == Watcher::Result::kEvent) {
      if (e.phase() == v1::PHASE_TRAIN) {
        c.train_loss.Add(e.step(), e.loss());
      } else if (e.phase() == v1::PHASE_EVAL) {
        c.test_loss.Add(e.step(), e.loss());
        c.test_acc.Add(e.step(), e.accuracy() >= 0 ? e.accuracy() : NAN);
      }
      for (const v1::LayerStats& l : e.layers()) {
        if (std::find(layers.begin(), layers.end(), l.name()) == layers.end())
          layers.push_back(l.name());
        const double v =
            l.grad_bias_norm() > 0 ? l.grad_bias_norm() : l.grad_weight_norm();
        c.speed[l.name()].Add(e.step(), v > 0 ? v : NAN);  // Log scale.
      }
    }
    trials.push_back(std::move(c));
  }
  std::string chosen = layer;
  if (std::find(layers.begin(), layers.end(), chosen) == layers.end()) {
    chosen = layers.empty() ? "" : layers.front();
  }
  std::string out = "{\"layers\":[";
  for (size_t i = 0; i < layers.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", JsonString(layers[i]));
  }
  absl::StrAppend(&out, "],\"layer\":", JsonString(chosen), ",\"trials\":[");
  for (size_t i = 0; i < trials.size(); ++i) {
    const Curves& c = trials[i];
    std::vector<double> acc = c.test_acc.y;
    absl::StrAppend(
        &out, i ? "," : "", "{\"index\":", c.index,
        ",\"job_id\":", JsonString(c.job_id),
        ",\"label\":", JsonString(labels[c.index]), ",",
        SeriesJson("step", c.train_loss, "train_loss"), ",",
        SeriesJson("eval_step", c.test_loss, "test_loss", &acc, "test_acc"),
        ",");
    auto it = c.speed.find(chosen);
    absl::StrAppend(
        &out,
        SeriesJson("speed_step", it == c.speed.end() ? Series() : it->second,
                   "speed"),
        "}");
  }
  return out + "]}\n";
}

}  // namespace nnlab::server

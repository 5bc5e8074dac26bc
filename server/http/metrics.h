// A writer of the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): metric
// families with HELP and TYPE lines, samples with escaped label values,
// histograms as cumulative _bucket / _sum / _count series. Debian ships no
// Prometheus client library for C++, and nnlabd needs only this much.
//
// Names are the program's own constants: an invalid metric or label name is
// a bug and aborts (NNLAB_CHECK). Label values may be anything (job labels
// come from clients) and are escaped. Thread-compatible.
#ifndef NNLAB_SERVER_HTTP_METRICS_H_
#define NNLAB_SERVER_HTTP_METRICS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/telemetry.h"

namespace nnlab::server {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class ExpositionWriter {
 public:
  // Starts a family: "# HELP name help" and "# TYPE name type". `type` is
  // counter, gauge, histogram or untyped. Each family once per exposition,
  // with all its samples before the next family.
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help);
  // One sample line of the current family; `suffix` is appended to the
  // family's name (e.g. "_total" is part of the name, "_bucket" is a suffix).
  void Sample(const MetricLabels& labels, double value,
              absl::string_view suffix = "");
  // The _bucket (cumulative, "le" label last), _sum and _count lines of one
  // histogram series of the current histogram family.
  void Histogram(const MetricLabels& labels, const Histogram::Snapshot& h);

  // The exposition so far; the writer is empty afterwards.
  std::string Take();

  // The format's value syntax: integers without exponent, NaN, +Inf, -Inf.
  static std::string FormatValue(double v);
  // A label value escaped for the format (\\, \" and \n).
  static std::string EscapeLabelValue(absl::string_view v);

 private:
  std::string out_;
  std::string family_;
};

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_HTTP_METRICS_H_

#include "server/http/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab::server {
namespace {

// [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; labels have no ':'.
bool ValidName(absl::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = absl::ascii_isalpha(c) || c == '_' || (colon && c == ':') ||
                    (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

// HELP text escapes only backslash and newline.
std::string EscapeHelp(absl::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string ExpositionWriter::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  // The shortest of 15 or 17 digits that reads back as the same double.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  if (std::strtod(buf, nullptr) != v)
    std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string ExpositionWriter::EscapeLabelValue(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void ExpositionWriter::Family(absl::string_view name, absl::string_view type,
                              absl::string_view help) {
  NNLAB_CHECK(ValidName(name, /*colon=*/true));
  NNLAB_CHECK(type == "counter" || type == "gauge" || type == "histogram" ||
              type == "untyped");
  family_ = std::string(name);
  absl::StrAppend(&out_, "# HELP ", name, " ", EscapeHelp(help), "\n",
                  "# TYPE ", name, " ", type, "\n");
}

void ExpositionWriter::Sample(const MetricLabels& labels, double value,
                              absl::string_view suffix) {
  NNLAB_CHECK(!family_.empty());
  absl::StrAppend(&out_, family_, suffix);
  if (!labels.empty()) {
    out_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      NNLAB_CHECK(ValidName(labels[i].first, /*colon=*/false));
      absl::StrAppend(&out_, i ? "," : "", labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    out_ += '}';
  }
  absl::StrAppend(&out_, " ", FormatValue(value), "\n");
}

void ExpositionWriter::Histogram(const MetricLabels& labels,
                                 const Histogram::Snapshot& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    MetricLabels with_le = labels;
    with_le.emplace_back(
        "le", i < h.bounds.size() ? FormatValue(h.bounds[i]) : "+Inf");
    Sample(with_le, static_cast<double>(cumulative), "_bucket");
  }
  Sample(labels, h.sum, "_sum");
  Sample(labels, static_cast<double>(h.count), "_count");
}

std::string ExpositionWriter::Take() {
  family_.clear();
  std::string out;
  out.swap(out_);
  return out;
}

}  // namespace nnlab::server

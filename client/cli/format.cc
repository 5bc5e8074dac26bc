#include "client/cli/format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/cli/live.h"
#include "google/protobuf/util/json_util.h"

namespace nnlab::cli {
namespace {

// Columns padded to the widest cell.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size())
        line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string Accuracy(const v1::EvalResult& e) {
  return e.accuracy() >= 0 ? absl::StrFormat("%.4f", e.accuracy()) : "-";
}

}  // namespace

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

std::string FormatModel(const v1::Model& m) {
  std::string out = absl::StrFormat(
      "model %s \"%s\": %d parameters, input %s -> output %s", m.model_id(),
      m.name(), m.parameter_count(), ShapeString(m.input_shape()),
      ShapeString(m.output_shape()));
  if (m.has_gan()) out += " (GAN)";
  if (m.trained_steps() > 0)
    absl::StrAppend(&out, ", trained ", m.trained_steps(), " steps");
  if (!m.active_job_id().empty())
    absl::StrAppend(&out, ", training in job ", m.active_job_id());
  out += "\n";
  std::vector<std::vector<std::string>> rows = {
      {"  layer", "kind", "output", "parameters"}};
  for (const v1::LayerInfo& l : m.layers()) {
    std::vector<std::string> params;
    for (const v1::ParamInfo& p : l.params()) {
      params.push_back(absl::StrCat(p.name(), " ", ShapeString(p.shape())));
    }
    rows.push_back({"  " + l.name(), l.kind(), ShapeString(l.output_shape()),
                    absl::StrJoin(params, ", ")});
  }
  if (m.layers_size() > 0) out += Table(rows);
  return out;
}

std::string FormatJob(const v1::Job& j) {
  std::string out = absl::StrFormat(
      "job %s: model %s on %s, %s, step %d/%d (epoch %d)", j.job_id(),
      j.spec().model_id(), j.spec().dataset(), JobStateName(j.state()),
      j.step(), j.total_steps(), j.epoch());
  if (j.has_last_eval()) {
    absl::StrAppendFormat(&out, ", test loss %.4g accuracy %s (step %d)",
                          j.last_eval().loss(), Accuracy(j.last_eval()),
                          j.last_eval().step());
  }
  if (!j.placed_on().empty()) absl::StrAppend(&out, ", on ", j.placed_on());
  if (!j.failure_reason().empty())
    absl::StrAppend(&out, ": ", j.failure_reason());
  return out;
}

std::string ModelsTable(const std::vector<v1::Model>& models) {
  std::vector<std::vector<std::string>> rows = {
      {"MODEL", "NAME", "PARAMETERS", "INPUT", "OUTPUT", "STEPS", "JOB"}};
  for (const v1::Model& m : models) {
    rows.push_back({m.model_id(), m.name(), absl::StrCat(m.parameter_count()),
                    ShapeString(m.input_shape()), ShapeString(m.output_shape()),
                    absl::StrCat(m.trained_steps()),
                    m.active_job_id().empty() ? "-" : m.active_job_id()});
  }
  return Table(rows);
}

std::string JobsTable(const std::vector<v1::Job>& jobs) {
  std::vector<std::vector<std::string>> rows = {{"JOB", "MODEL", "DATASET",
                                                 "STATE", "STEP", "LOSS",
                                                 "TEST ACC", "LABEL", "ON"}};
  for (const v1::Job& j : jobs) {
    // A QUEUED job with a reason is back in the queue (a shutdown, a lost
    // cluster member) or waiting for members: the reason's first clause.
    std::string state = JobStateName(j.state());
    if (j.state() == v1::JOB_STATE_QUEUED && !j.failure_reason().empty()) {
      absl::StrAppend(
          &state, ": ",
          j.failure_reason().substr(0, j.failure_reason().find(':')));
    }
    rows.push_back({j.job_id(), j.spec().model_id(), j.spec().dataset(), state,
                    absl::StrCat(j.step(), "/", j.total_steps()),
                    absl::StrFormat("%.4g", j.last_loss()),
                    j.has_last_eval() ? Accuracy(j.last_eval()) : "-",
                    j.spec().label(),
                    j.placed_on().empty() ? "-" : j.placed_on()});
  }
  return Table(rows);
}

std::string DatasetsTable(const std::vector<v1::DatasetInfo>& datasets) {
  std::vector<std::vector<std::string>> rows = {{"DATASET", "NAME", "SAMPLE",
                                                 "TARGET", "CLASSES", "TRAIN",
                                                 "TEST", "KIND"}};
  for (const v1::DatasetInfo& d : datasets) {
    rows.push_back(
        {d.dataset_id(), d.name(), ShapeString(d.sample_shape()),
         d.target_shape_size() ? ShapeString(d.target_shape()) : "class",
         absl::StrCat(d.num_classes()), absl::StrCat(d.train_samples()),
         absl::StrCat(d.test_samples()), d.builtin() ? "built-in" : "upload"});
  }
  return Table(rows);
}

std::string ToJsonLine(const google::protobuf::Message& m) {
  std::string s;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = false;
  (void)google::protobuf::util::MessageToJsonString(m, &s, opts);
  return s;
}

int ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kDeadlineExceeded:
      return 3;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kOutOfRange:
      return 2;
    default:
      return 1;
  }
}

std::string OneLineError(const absl::Status& s) {
  std::string msg(s.message());
  msg = absl::StrReplaceAll(msg, {{"\r\n", "; "}, {"\n", "; "}});
  return absl::StrCat(absl::StatusCodeToString(s.code()), ": ", msg);
}

}  // namespace nnlab::cli

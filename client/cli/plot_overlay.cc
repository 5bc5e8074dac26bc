// nnlab plot with several jobs or a sweep: their curves on one figure, the
// legend naming what differs between them.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/common.h"
#include "client/cli/plot.h"
#include "client/sweep_labels.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/sweep.grpc.pb.h"

namespace nnlab::cli {
namespace {

namespace pb = ::google::protobuf;

// "field=value" for every set field of `m` (nested fields as a.b), in
// field order.
void Flatten(const pb::Message& m, const std::string& prefix,
             std::map<std::string, std::string>* out) {
  std::vector<const pb::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const pb::FieldDescriptor* f : fields) {
    const std::string name = prefix + f->name();
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE &&
        !f->is_repeated()) {
      Flatten(m.GetReflection()->GetMessage(m, f), name + ".", out);
      continue;
    }
    std::string text;
    if (f->is_repeated()) {
      std::vector<std::string> parts;
      for (int i = 0; i < m.GetReflection()->FieldSize(m, f); ++i) {
        std::string v;
        pb::TextFormat::PrintFieldValueToString(m, f, i, &v);
        parts.push_back(v);
      }
      text = absl::StrCat("[", absl::StrJoin(parts, ","), "]");
    } else {
      pb::TextFormat::PrintFieldValueToString(m, f, -1, &text);
    }
    (*out)[name] = text;
  }
}

// For each job: the fields of its spec whose values are not the same in
// every job (the label and model id left out when something else differs).
std::vector<std::string> DifferingLabels(const std::vector<v1::Job>& jobs) {
  std::vector<std::map<std::string, std::string>> flat(jobs.size());
  std::set<std::string> names;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Flatten(jobs[i].spec(), "", &flat[i]);
    for (const auto& [k, v] : flat[i]) names.insert(k);
  }
  std::vector<std::string> differ;
  for (const std::string& n : names) {
    if (n == "label") continue;
    std::set<std::string> values;
    for (const auto& f : flat) {
      auto it = f.find(n);
      values.insert(it == f.end() ? "(default)" : it->second);
    }
    if (values.size() > 1) differ.push_back(n);
  }
  if (differ.size() > 1) {
    differ.erase(std::remove(differ.begin(), differ.end(), "model_id"),
                 differ.end());
  }
  std::vector<std::string> labels;
  for (size_t i = 0; i < jobs.size(); ++i) {
    std::vector<std::string> parts;
    for (const std::string& n : differ) {
      auto it = flat[i].find(n);
      parts.push_back(n + "=" +
                      (it == flat[i].end() ? "(default)" : it->second));
    }
    labels.push_back(parts.empty() ? jobs[i].job_id()
                                   : absl::StrJoin(parts, " "));
  }
  return labels;
}

// A sweep's started trials, labelled by the settings that differ between
// them (the rule the dashboard uses too).
absl::Status SweepJobs(Client& c, const v1::Sweep& s,
                       std::vector<v1::Job>* jobs,
                       std::vector<std::string>* labels) {
  const std::vector<std::string> all = SweepTrialLabels(s);
  for (int i = 0; i < s.trials_size(); ++i) {
    if (s.trials(i).job_id().empty()) continue;
    auto job = c.GetJob(s.trials(i).job_id());
    if (!job.ok()) return job.status();
    jobs->push_back(*job);
    labels->push_back(all[i]);
  }
  return absl::OkStatus();
}

}  // namespace

int RunOverlayPlot(const Globals& g, const std::vector<std::string>& ids,
                   const std::string& layer, const std::string& out) {
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  std::vector<v1::Job> jobs;
  std::vector<std::string> labels;
  std::vector<v1::Job> plain;
  std::string title;
  for (const std::string& id : ids) {
    auto job = (*client)->GetJob(id);
    if (job.ok()) {
      plain.push_back(*job);
      continue;
    }
    if (!absl::IsNotFound(job.status()) &&
        !absl::IsInvalidArgument(job.status())) {
      return Fail(job.status());
    }
    // Not a job: a sweep?
    auto stub = v1::SweepService::NewStub((*client)->channel());
    grpc::ClientContext ctx;
    (*client)->PrepareContext(&ctx, true);
    v1::GetSweepRequest req;
    req.set_sweep_id(id);
    v1::Sweep sweep;
    grpc::Status st = stub->GetSweep(&ctx, req, &sweep);
    if (!st.ok()) return Fail(job.status());
    absl::Status s = SweepJobs(**client, sweep, &jobs, &labels);
    if (!s.ok()) return Fail(s);
    title = absl::StrCat("sweep ", id, ": ", sweep.spec().name());
  }
  if (!plain.empty()) {
    std::vector<std::string> l = DifferingLabels(plain);
    jobs.insert(jobs.end(), plain.begin(), plain.end());
    labels.insert(labels.end(), l.begin(), l.end());
  }
  if (title.empty()) title = absl::StrCat(jobs.size(), " jobs");
  std::vector<OverlayTrial> trials;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const v1::Job& job = jobs[i];
    const bool ended = job.state() == v1::JOB_STATE_COMPLETED ||
                       job.state() == v1::JOB_STATE_CANCELLED ||
                       job.state() == v1::JOB_STATE_FAILED;
    const int64_t until = job.step();
    OverlayTrial t;
    t.label = labels[i];
    v1::StreamMetricsRequest req;
    req.set_job_id(job.job_id());
    absl::Status s =
        (*client)->WatchMetrics(req, [&](const v1::MetricEvent& e) {
          t.history.Add(e);
          return ended || e.step() < until || e.phase() != v1::PHASE_TRAIN;
        });
    if (!s.ok()) return Fail(s);
    trials.push_back(std::move(t));
  }
  absl::Status s = WriteOverlayPlot(title, trials, layer, out);
  if (!s.ok()) return Fail(s);
  if (!g.json) std::printf("wrote %s (%zu jobs)\n", out.c_str(), trials.size());
  return kExitOk;
}

}  // namespace nnlab::cli

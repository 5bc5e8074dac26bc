#include "client/sweep_labels.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nnlab {

std::vector<std::string> SweepTrialLabels(const v1::Sweep& sweep) {
  std::map<std::string, std::set<std::string>> values;
  for (const v1::SweepTrial& t : sweep.trials()) {
    for (const v1::SweepParam& p : t.params()) {
      values[p.field()].insert(p.value());
    }
  }
  std::vector<std::string> labels;
  labels.reserve(sweep.trials_size());
  for (const v1::SweepTrial& t : sweep.trials()) {
    std::vector<std::string> parts;
    for (const v1::SweepParam& p : t.params()) {
      if (values[p.field()].size() < 2) continue;
      std::string v = p.value();
      if (p.field() == "model") {
        // A whole ModelSpec in text format: its name says which.
        const size_t at = v.find("name: \"");
        const size_t end = at == std::string::npos ? at : v.find('"', at + 7);
        v = end == std::string::npos ? "(model)"
                                     : v.substr(at + 7, end - at - 7);
      }
      std::replace(v.begin(), v.end(), '\n', ' ');
      parts.push_back(p.field() + "=" + v);
    }
    labels.push_back(parts.empty() ? absl::StrCat("trial ", t.index())
                                   : absl::StrJoin(parts, " "));
  }
  return labels;
}

}  // namespace nnlab

#include "server/sequence_datasets.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/data/sequence_data.h"
#include "core/status_macros.h"

namespace nnlab::server {
namespace {

constexpr int64_t kAddingDefaultSteps = 50;

v1::DatasetInfo AddingInfo(int64_t steps) {
  v1::DatasetInfo info;
  info.set_dataset_id(absl::StrCat("adding:T=", steps));
  info.set_name(absl::StrCat("adding problem, ", steps, " steps"));
  info.set_builtin(true);
  info.add_sample_shape(steps);
  info.add_sample_shape(2);
  info.add_target_shape(1);
  info.set_train_samples(kAddingTrainSamples);
  info.set_test_samples(kAddingTestSamples);
  return info;
}

absl::StatusOr<int64_t> AddingSteps(const std::string& id) {
  if (id == "adding") return kAddingDefaultSteps;
  int64_t steps = 0;
  if (!absl::StartsWith(id, "adding:T=") ||
      !absl::SimpleAtoi(id.substr(9), &steps) || steps < 2 ||
      steps > kAddingMaxSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset \"", id,
                     "\": the adding problem is \"adding:T=<steps>\" with 2 "
                     "<= steps <= ",
                     kAddingMaxSteps, " (\"adding\" is adding:T=50)"));
  }
  return steps;
}

}  // namespace

bool IsSequenceBuiltin(const std::string& id) {
  return id == "adding" || absl::StartsWith(id, "adding:");
}

absl::StatusOr<std::shared_ptr<const DatasetPair>> MakeSequenceBuiltin(
    const std::string& id) {
  NNLAB_ASSIGN_OR_RETURN(const int64_t steps, AddingSteps(id));
  NNLAB_ASSIGN_OR_RETURN(std::unique_ptr<AddingProblem> task,
                         AddingProblem::Create(steps));
  auto pair = std::make_shared<DatasetPair>();
  // Fixed seeds: every server generates the same sequences.
  NNLAB_ASSIGN_OR_RETURN(pair->train,
                         SampleDataset(*task, kAddingTrainSamples, 1));
  NNLAB_ASSIGN_OR_RETURN(pair->test,
                         SampleDataset(*task, kAddingTestSamples, 2));
  pair->info = AddingInfo(steps);
  return std::shared_ptr<const DatasetPair>(std::move(pair));
}

std::vector<v1::DatasetInfo> SequenceBuiltinInfos() {
  return {AddingInfo(kAddingDefaultSteps)};
}

}  // namespace nnlab::server

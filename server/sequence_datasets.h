// Built-in generated sequence data sets, named by their parameters:
//
//   adding:T=<steps>   the adding problem (core/data/sequence_data.h
//                      AddingProblem): x [T, 2], y [1], MSE targets;
//                      10,000 training and 1,000 test sequences drawn with
//                      fixed seeds, 2 <= T <= 1000. "adding" alone is
//                      adding:T=50.
//
// Generated whenever a job asks (22 M floats for T = 1000), never cached:
// memory stays bounded by the running jobs whatever lengths clients name.
#ifndef NNLAB_SERVER_SEQUENCE_DATASETS_H_
#define NNLAB_SERVER_SEQUENCE_DATASETS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nnlab/v1/dataset.pb.h"
#include "server/datasets.h"

namespace nnlab::server {

inline constexpr int64_t kAddingTrainSamples = 10000;
inline constexpr int64_t kAddingTestSamples = 1000;
inline constexpr int64_t kAddingMaxSteps = 1000;

// True for ids of the families above ("adding", "adding:..."), valid or not:
// the registry sends them here rather than to the uploads.
bool IsSequenceBuiltin(const std::string& id);

// The data set `id` names, generated. InvalidArgument for a malformed or
// out-of-range parameter, naming the accepted form.
absl::StatusOr<std::shared_ptr<const DatasetPair>> MakeSequenceBuiltin(
    const std::string& id);

// What ListDatasets shows for these families (their default members).
std::vector<v1::DatasetInfo> SequenceBuiltinInfos();

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_SEQUENCE_DATASETS_H_

// Built-in character corpora, named by their parameters:
//
//   chars:devil:T=<steps>  Ambrose Bierce, The Devil's Dictionary (1911;
//                          public domain), as Debian's dict-devil ships it
//                          (/usr/share/dictd/devil.dict.dz, read whole,
//                          dictd header included; 383,656 characters).
//                          "chars:devil" is chars:devil:T=64; 1 <= T <= 1000.
//
// Vocabulary: every byte value the text holds, in increasing order
// (DatasetInfo.vocabulary, a proto string: fine for this ASCII text; a
// corpus with other bytes would need a bytes field); character i is one-hot
// position i and class i.
// Samples are windows of T characters, x one-hot [T, V], y [T] the next
// character at each step (class indices, regression-shaped like every
// per-step target: Dataset::num_classes() is 0, DatasetInfo.num_classes is
// V). Split, fixed: the first 90% of the text is training text, the rest
// test text; each is cut into consecutive non-overlapping windows from its
// start (window k starts at k T; the last character of a window's targets
// is the first of the next window's inputs).
//
// The text is decompressed once and kept (384 KB); windows are one-hot
// encoded per batch, so a data set costs no more than its text whatever T.
// NNLAB_DEVIL_DICT, if set, names another path for the file (tests).
// Thread-safe.
#ifndef NNLAB_SERVER_CHAR_DATASETS_H_
#define NNLAB_SERVER_CHAR_DATASETS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/sequence_data.h"
#include "nnlab/v1/dataset.pb.h"
#include "server/datasets.h"

namespace nnlab::server {

inline constexpr char kDevilDictPath[] = "/usr/share/dictd/devil.dict.dz";
inline constexpr int64_t kCharDefaultSteps = 64;
inline constexpr int64_t kCharMaxSteps = 1000;

// True for ids of the family above ("chars", "chars:..."), valid or not.
bool IsCharBuiltin(const std::string& id);

// The corpus `id` names. InvalidArgument for a malformed id or T out of
// range, NotFound (naming `apt-get install dict-devil`) when the file is
// missing, DataLoss when it does not decompress.
absl::StatusOr<std::shared_ptr<const CharCorpus>> CharCorpusFor(
    const std::string& id);

// The data set `id` names; errors as CharCorpusFor.
absl::StatusOr<std::shared_ptr<const DatasetPair>> MakeCharBuiltin(
    const std::string& id);

// What ListDatasets shows: chars:devil:T=64 when its file is installed,
// nothing otherwise.
std::vector<v1::DatasetInfo> CharBuiltinInfos();

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_CHAR_DATASETS_H_

#include "server/char_datasets.h"

#include <zlib.h>

#include <cstdlib>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/status_macros.h"

namespace nnlab::server {
namespace {

// T characters per window, consecutive windows of text[begin, end), one-hot
// encoded when gathered.
class CharWindows : public Dataset {
 public:
  CharWindows(std::shared_ptr<const CharCorpus> corpus, int64_t begin,
              int64_t end, int64_t steps)
      : corpus_(std::move(corpus)),
        begin_(begin),
        size_((end - begin - 1) / steps),
        sample_shape_{steps, corpus_->vocab_size()},
        target_shape_{steps} {}

  int64_t size() const override { return size_; }
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  int num_classes() const override { return 0; }  // Per-step targets.

  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override {
    const int64_t n = static_cast<int64_t>(idx.size());
    const int64_t t = sample_shape_[0], v = sample_shape_[1];
    const std::string& text = corpus_->text();
    x->Resize({n, t, v});
    x->SetZero();
    y->Resize({n, t});
    for (int64_t k = 0; k < n; ++k) {
      const int64_t start = begin_ + idx[k] * t;
      for (int64_t s = 0; s < t; ++s) {
        (*x)[(k * t + s) * v + corpus_->Index(text[start + s])] = 1.0f;
        (*y)[k * t + s] =
            static_cast<float>(corpus_->Index(text[start + s + 1]));
      }
    }
  }

 private:
  std::shared_ptr<const CharCorpus> corpus_;
  int64_t begin_, size_;
  Shape sample_shape_, target_shape_;
};

absl::StatusOr<int64_t> CharSteps(const std::string& id) {
  if (id == "chars:devil") return kCharDefaultSteps;
  int64_t steps = 0;
  constexpr absl::string_view kPrefix = "chars:devil:T=";
  if (!absl::StartsWith(id, kPrefix) ||
      !absl::SimpleAtoi(absl::string_view(id).substr(kPrefix.size()), &steps) ||
      steps < 1 || steps > kCharMaxSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset \"", id,
        "\": the character corpus is \"chars:devil:T=<steps>\" with 1 <= "
        "steps <= ",
        kCharMaxSteps, " (\"chars:devil\" is chars:devil:T=", kCharDefaultSteps,
        ")"));
  }
  return steps;
}

std::string DictPath() {
  const char* env = std::getenv("NNLAB_DEVIL_DICT");
  return env != nullptr && *env != '\0' ? std::string(env) : kDevilDictPath;
}

// dictzip files are gzip files with an index in the header's extra field:
// zlib's gz* reader ignores it.
absl::StatusOr<std::string> ReadGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("the character corpus \"chars:devil\" reads ", path,
                     ", which is missing: apt-get install dict-devil"));
  }
  std::string text;
  char buf[1 << 16];
  int got = 0;
  while ((got = gzread(f, buf, sizeof(buf))) > 0) text.append(buf, got);
  int err = Z_OK;
  const std::string message = got < 0 ? gzerror(f, &err) : "";
  gzclose(f);
  if (got < 0) {
    return absl::DataLossError(
        absl::StrCat("cannot decompress ", path, ": ", message));
  }
  return text;
}

absl::Mutex cache_mu(absl::kConstInit);
// Path -> corpus; failures are not kept, so installing the package later
// works without a restart.
std::map<std::string, std::shared_ptr<const CharCorpus>>* cache
    ABSL_GUARDED_BY(cache_mu) = nullptr;

absl::StatusOr<std::shared_ptr<const CharCorpus>> LoadCorpus() {
  const std::string path = DictPath();
  absl::MutexLock lock(&cache_mu);
  if (cache == nullptr) {
    cache = new std::map<std::string, std::shared_ptr<const CharCorpus>>();
  }
  auto it = cache->find(path);
  if (it != cache->end()) return it->second;
  NNLAB_ASSIGN_OR_RETURN(std::string text, ReadGzip(path));
  // A corpus needs a test window (2 characters) after its 90% of training
  // text; FromText checks only >= 2.
  if (text.size() < 20) {
    return absl::DataLossError(
        absl::StrCat(path, " holds only ", text.size(), " characters"));
  }
  NNLAB_ASSIGN_OR_RETURN(CharCorpus corpus,
                         CharCorpus::FromText(std::move(text)));
  auto shared = std::make_shared<const CharCorpus>(std::move(corpus));
  (*cache)[path] = shared;
  return shared;
}

int64_t SplitPoint(const CharCorpus& c) { return c.size() * 9 / 10; }

v1::DatasetInfo CharInfo(const CharCorpus& corpus, int64_t steps) {
  v1::DatasetInfo info;
  info.set_dataset_id(absl::StrCat("chars:devil:T=", steps));
  info.set_name(absl::StrCat("The Devil's Dictionary (Bierce), ", steps,
                             "-character windows"));
  info.set_builtin(true);
  info.add_sample_shape(steps);
  info.add_sample_shape(corpus.vocab_size());
  info.add_target_shape(steps);
  info.set_num_classes(corpus.vocab_size());
  const int64_t split = SplitPoint(corpus);
  info.set_train_samples((split - 1) / steps);
  info.set_test_samples((corpus.size() - split - 1) / steps);
  std::string vocabulary;
  for (int i = 0; i < corpus.vocab_size(); ++i) vocabulary += corpus.Char(i);
  info.set_vocabulary(vocabulary);
  return info;
}

}  // namespace

bool IsCharBuiltin(const std::string& id) {
  return id == "chars" || absl::StartsWith(id, "chars:");
}

absl::StatusOr<std::shared_ptr<const CharCorpus>> CharCorpusFor(
    const std::string& id) {
  NNLAB_RETURN_IF_ERROR(CharSteps(id).status());
  return LoadCorpus();
}

absl::StatusOr<std::shared_ptr<const DatasetPair>> MakeCharBuiltin(
    const std::string& id) {
  NNLAB_ASSIGN_OR_RETURN(const int64_t steps, CharSteps(id));
  NNLAB_ASSIGN_OR_RETURN(std::shared_ptr<const CharCorpus> corpus,
                         LoadCorpus());
  const int64_t split = SplitPoint(*corpus);
  auto pair = std::make_shared<DatasetPair>();
  pair->info = CharInfo(*corpus, steps);
  if (pair->info.train_samples() < 1 || pair->info.test_samples() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset \"", id, "\": windows of ", steps,
                     " characters leave no training or test window"));
  }
  pair->train = std::make_shared<CharWindows>(corpus, 0, split, steps);
  pair->test =
      std::make_shared<CharWindows>(corpus, split, corpus->size(), steps);
  return std::shared_ptr<const DatasetPair>(std::move(pair));
}

std::vector<v1::DatasetInfo> CharBuiltinInfos() {
  absl::StatusOr<std::shared_ptr<const CharCorpus>> corpus = LoadCorpus();
  if (!corpus.ok()) return {};
  return {CharInfo(**corpus, kCharDefaultSteps)};
}

}  // namespace nnlab::server

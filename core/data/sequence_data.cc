#include "core/data/sequence_data.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace nnlab {

absl::StatusOr<std::unique_ptr<TensorDataset>> SampleDataset(
    const Sampler& sampler, int64_t n, uint64_t seed) {
  if (n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("n: must be >= 1, got ", n));
  }
  if (sampler.target_shape().empty()) {
    return absl::InvalidArgumentError(
        "sampler has no targets (a distribution): nothing to learn from");
  }
  Rng rng(seed);
  Tensor x, y;
  sampler.Sample(n, &rng, &x, &y);
  return TensorDataset::Create(std::move(x), std::move(y), 0);
}

// AddingProblem ---------------------------------------------------------------

AddingProblem::AddingProblem(int64_t length)
    : length_(length), sample_shape_{length, 2}, target_shape_{1} {}

absl::StatusOr<std::unique_ptr<AddingProblem>> AddingProblem::Create(
    int64_t length) {
  if (length < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "length: the adding problem needs >= 2 steps, got ", length));
  }
  return std::unique_ptr<AddingProblem>(new AddingProblem(length));
}

void AddingProblem::Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const {
  const int64_t t = length_, half = length_ / 2;
  x->Resize({n, t, 2});
  if (y != nullptr) y->Resize({n, 1});
  for (int64_t i = 0; i < n; ++i) {
    float* row = x->data() + i * t * 2;
    for (int64_t s = 0; s < t; ++s) {
      row[2 * s] = rng->Uniform();
      row[2 * s + 1] = 0.0f;
    }
    const int64_t a = static_cast<int64_t>(rng->UniformInt(half));
    const int64_t b = half + static_cast<int64_t>(rng->UniformInt(t - half));
    row[2 * a + 1] = 1.0f;
    row[2 * b + 1] = 1.0f;
    if (y != nullptr) (*y)[i] = row[2 * a] + row[2 * b];
  }
}

// CopyTask --------------------------------------------------------------------

CopyTask::CopyTask(int num_symbols, int64_t copy_length, int64_t delay)
    : num_symbols_(num_symbols),
      copy_length_(copy_length),
      delay_(delay),
      sample_shape_{2 * copy_length + delay, num_symbols + 2},
      target_shape_{2 * copy_length + delay} {}

absl::StatusOr<std::unique_ptr<CopyTask>> CopyTask::Create(int num_symbols,
                                                           int64_t copy_length,
                                                           int64_t delay) {
  if (num_symbols < 1 || num_symbols > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_symbols: must be in [1, 1000], got ", num_symbols));
  }
  if (copy_length < 1 || delay < 1 || copy_length > (1 << 20) ||
      delay > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy_length and delay: must be in [1, 2^20], got ",
                     copy_length, " and ", delay));
  }
  return std::unique_ptr<CopyTask>(
      new CopyTask(num_symbols, copy_length, delay));
}

void CopyTask::Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const {
  const int64_t len = 2 * copy_length_ + delay_;
  const int64_t v = num_symbols_ + 2;
  const int delimiter = num_symbols_ + 1;
  x->Resize({n, len, v});
  x->SetZero();
  Tensor unused;
  Tensor* yt = y != nullptr ? y : &unused;
  yt->Resize({n, len});
  for (int64_t i = 0; i < n; ++i) {
    float* xi = x->data() + i * len * v;
    float* yi = yt->data() + i * len;
    for (int64_t s = 0; s < len; ++s) {
      int in = 0;  // Blank.
      yi[s] = 0.0f;
      if (s < copy_length_) {
        in = 1 + static_cast<int>(rng->UniformInt(num_symbols_));
      } else if (s == copy_length_ + delay_ - 1) {
        in = delimiter;
      }
      xi[s * v + in] = 1.0f;
    }
    // The symbols are the argmax of the first copy_length input steps.
    for (int64_t s = 0; s < copy_length_; ++s) {
      const float* step = xi + s * v;
      const int64_t symbol = std::max_element(step, step + v) - step;
      yi[copy_length_ + delay_ + s] = static_cast<float>(symbol);
    }
  }
}

double CopyTask::MemorylessCrossEntropy() const {
  const double len = double(2 * copy_length_ + delay_);
  return copy_length_ * std::log(double(num_symbols_)) / len;
}

// Distributions ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Gaussian1D>> Gaussian1D::Create(float mean,
                                                               float stddev) {
  if (!std::isfinite(mean) || !std::isfinite(stddev) || !(stddev > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Gaussian N(", mean, ", ", stddev,
                     "^2): mean must be finite and stddev > 0"));
  }
  return std::unique_ptr<Gaussian1D>(new Gaussian1D(mean, stddev));
}

void Gaussian1D::Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const {
  x->Resize({n, 1});
  for (int64_t i = 0; i < n; ++i) (*x)[i] = rng->Normal(mean_, stddev_);
}

absl::StatusOr<std::unique_ptr<GaussianRing>> GaussianRing::Create(
    int modes, float radius, float stddev) {
  if (modes < 1 || !std::isfinite(radius) || radius < 0 ||
      !std::isfinite(stddev) || !(stddev > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ring of Gaussians: needs modes >= 1, radius >= 0, stddev > 0; got ",
        modes, ", ", radius, ", ", stddev));
  }
  return std::unique_ptr<GaussianRing>(new GaussianRing(modes, radius, stddev));
}

std::array<float, 2> GaussianRing::Centre(int k) const {
  const double angle = 2.0 * M_PI * k / modes_;
  return {static_cast<float>(radius_ * std::cos(angle)),
          static_cast<float>(radius_ * std::sin(angle))};
}

void GaussianRing::Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const {
  x->Resize({n, 2});
  for (int64_t i = 0; i < n; ++i) {
    const auto c = Centre(static_cast<int>(rng->UniformInt(modes_)));
    (*x)[2 * i] = rng->Normal(c[0], stddev_);
    (*x)[2 * i + 1] = rng->Normal(c[1], stddev_);
  }
}

void DatasetSampler::Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const {
  // Per-thread scratch, reused from draw to draw (a GAN step draws every
  // step), so the sampler stays immutable and a warm draw allocates
  // nothing.
  thread_local std::vector<int64_t> idx;
  thread_local Tensor labels;
  idx.resize(n);
  for (int64_t& i : idx)
    i = static_cast<int64_t>(rng->UniformInt(data_->size()));
  data_->Gather(idx, x, &labels);
}

// MNIST rows and packing ------------------------------------------------------

absl::StatusOr<TrainTest> LoadMnistRows(const std::string& dir) {
  NNLAB_ASSIGN_OR_RETURN(TrainTest sets, LoadMnist(dir));
  NNLAB_RETURN_IF_ERROR(sets.train->Reshape({28, 28}));
  NNLAB_RETURN_IF_ERROR(sets.test->Reshape({28, 28}));
  return sets;
}

absl::StatusOr<Tensor> PackSequences(
    const std::vector<std::vector<float>>& sequences, int64_t features) {
  if (sequences.empty()) {
    return absl::InvalidArgumentError("sequences: the batch is empty");
  }
  if (features < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("features: must be >= 1, got ", features));
  }
  const int64_t n = static_cast<int64_t>(sequences.size());
  const int64_t total = static_cast<int64_t>(sequences[0].size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = static_cast<int64_t>(sequences[i].size());
    if (len == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("sequence ", i, ": length is zero"));
    }
    if (len % features != 0) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", i, ": ", len,
                                                     " values is not a whole "
                                                     "number of steps of ",
                                                     features, " features"));
    }
    if (len != total) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", i, " has ", len / features, " steps but sequence 0 has ",
          total / features,
          ": sequences of unequal length need padding and a mask, which a "
          "dense batch does not carry"));
    }
  }
  Tensor out({n, total / features, features});
  for (int64_t i = 0; i < n; ++i) {
    std::copy(sequences[i].begin(), sequences[i].end(), out.data() + i * total);
  }
  if (!out.AllFinite()) {
    return absl::InvalidArgumentError("sequences contain NaN or infinity");
  }
  return out;
}

// CharCorpus ------------------------------------------------------------------

absl::StatusOr<CharCorpus> CharCorpus::FromText(std::string text) {
  if (text.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "text: a corpus needs at least 2 characters, got ", text.size()));
  }
  CharCorpus c;
  c.text_ = std::move(text);
  std::array<bool, 256> seen{};
  for (char ch : c.text_) seen[static_cast<unsigned char>(ch)] = true;
  c.index_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    if (!seen[b]) continue;
    c.index_[b] = static_cast<int>(c.chars_.size());
    c.chars_.push_back(static_cast<char>(b));
  }
  return c;
}

absl::StatusOr<CharCorpus> CharCorpus::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read text file ", path));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return FromText(ss.str());
}

absl::Status CharCorpus::CheckRange(int64_t begin, int64_t end,
                                    int64_t length) const {
  if (begin < 0 || end > size() || begin >= end) {
    return absl::InvalidArgumentError(
        absl::StrCat("range [", begin, ", ", end,
                     ") is not inside the text of ", size(), " characters"));
  }
  if (length < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("length: must be >= 1, got ", length));
  }
  if (end - begin < length + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("range of ", end - begin,
                     " characters is shorter than "
                     "one window of length + 1 = ",
                     length + 1));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TensorDataset>> CharCorpus::Windows(
    int64_t begin, int64_t end, int64_t length, int64_t stride) const {
  NNLAB_RETURN_IF_ERROR(CheckRange(begin, end, length));
  if (stride < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("stride: must be >= 1, got ", stride));
  }
  const int64_t n = (end - begin - length - 1) / stride + 1;
  const int64_t v = vocab_size();
  if (n * length * v > (int64_t{1} << 28)) {
    return absl::InvalidArgumentError(
        absl::StrCat(n, " windows of ", length, " one-hot steps over ", v,
                     " characters exceed 2^28 floats; use a larger stride"));
  }
  Tensor x({n, length, v}), y({n, length});
  for (int64_t k = 0; k < n; ++k) {
    const int64_t start = begin + k * stride;
    for (int64_t s = 0; s < length; ++s) {
      x[(k * length + s) * v + Index(text_[start + s])] = 1.0f;
      y[k * length + s] = static_cast<float>(Index(text_[start + s + 1]));
    }
  }
  return TensorDataset::Create(std::move(x), std::move(y), 0);
}

namespace {

class CharWindowSampler : public Sampler {
 public:
  CharWindowSampler(const CharCorpus* corpus, int64_t begin, int64_t end,
                    int64_t length)
      : corpus_(corpus),
        begin_(begin),
        starts_(end - begin - length),
        sample_shape_{length, corpus->vocab_size()},
        target_shape_{length} {}

  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  int num_classes() const override { return corpus_->vocab_size(); }

  void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const override {
    const int64_t len = sample_shape_[0], v = sample_shape_[1];
    const std::string& text = corpus_->text();
    x->Resize({n, len, v});
    x->SetZero();
    if (y != nullptr) y->Resize({n, len});
    for (int64_t k = 0; k < n; ++k) {
      const int64_t start =
          begin_ + static_cast<int64_t>(rng->UniformInt(starts_));
      for (int64_t s = 0; s < len; ++s) {
        (*x)[(k * len + s) * v + corpus_->Index(text[start + s])] = 1.0f;
        if (y != nullptr) {
          (*y)[k * len + s] =
              static_cast<float>(corpus_->Index(text[start + s + 1]));
        }
      }
    }
  }

 private:
  const CharCorpus* corpus_;
  int64_t begin_, starts_;
  Shape sample_shape_, target_shape_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Sampler>> CharCorpus::WindowSampler(
    int64_t begin, int64_t end, int64_t length) const {
  NNLAB_RETURN_IF_ERROR(CheckRange(begin, end, length));
  return std::unique_ptr<Sampler>(
      new CharWindowSampler(this, begin, end, length));
}

double CharCorpus::UnigramCrossEntropy(int64_t train_begin, int64_t train_end,
                                       int64_t eval_begin,
                                       int64_t eval_end) const {
  std::vector<double> counts(vocab_size(), 1.0);  // Add-one smoothing.
  double total = vocab_size();
  for (int64_t i = train_begin; i < train_end; ++i) {
    counts[Index(text_[i])] += 1.0;
    total += 1.0;
  }
  double ce = 0;
  for (int64_t i = eval_begin; i < eval_end; ++i) {
    ce -= std::log(counts[Index(text_[i])] / total);
  }
  return eval_end > eval_begin ? ce / double(eval_end - eval_begin) : 0.0;
}

}  // namespace nnlab

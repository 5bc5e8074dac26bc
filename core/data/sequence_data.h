// Data for sequence models and GANs: synthetic sequence tasks (the adding
// problem, a copy/memory task), MNIST read row by row, a character corpus
// from a text file, and samplers of simple target distributions.
//
// Synthetic tasks and distributions are Samplers: they draw fresh samples
// on demand (an endless training stream), and SampleDataset() freezes n of
// them into a TensorDataset (a fixed test set, or a named server data set).
// Samplers are immutable after construction; Sample() is const and uses
// only the caller's Rng, so one sampler may serve several threads that
// each bring their own Rng.
#ifndef NNLAB_CORE_DATA_SEQUENCE_DATA_H_
#define NNLAB_CORE_DATA_SEQUENCE_DATA_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data/dataset.h"
#include "core/tensor/rng.h"
#include "core/tensor/tensor.h"

namespace nnlab {

class Sampler {
 public:
  virtual ~Sampler() = default;
  // Per-sample input shape.
  virtual const Shape& sample_shape() const = 0;
  // Per-sample target shape; empty for distributions (samples only).
  virtual const Shape& target_shape() const = 0;
  // Classes of class-index targets ([T] per-step classes), 0 otherwise.
  virtual int num_classes() const { return 0; }
  // Draws n >= 1 samples into x [n, sample...] and, if `y` is non-null and
  // the sampler has targets, their targets into y [n, target...]. Both are
  // resized; their buffers are reused.
  virtual void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const = 0;
};

// n samples (and targets) drawn once with `seed`, as a data set. Class-index
// targets of shape [n, T] are stored as a regression-shaped TensorDataset
// (num_classes 0; the values are class indices). InvalidArgument if n < 1
// or the sampler has no targets.
absl::StatusOr<std::unique_ptr<TensorDataset>> SampleDataset(
    const Sampler& sampler, int64_t n, uint64_t seed);

// The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et
// al. 2015): x [T, 2], channel 0 uniform in [0, 1), channel 1 marks one
// step in the first half and one in the second; y [1] is the sum of the two
// marked values. Predicting the mean (1) gives MSE 1/6 ~ 0.167.
class AddingProblem : public Sampler {
 public:
  // InvalidArgument unless length >= 2.
  static absl::StatusOr<std::unique_ptr<AddingProblem>> Create(int64_t length);

  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const override;

 private:
  explicit AddingProblem(int64_t length);
  int64_t length_;
  Shape sample_shape_, target_shape_;
};

// The copy (memory) task (Hochreiter & Schmidhuber 1997; Arjovsky et al.
// 2016): `copy_length` symbols from 1..num_symbols, then `delay` - 1
// blanks (class 0), a delimiter (class num_symbols + 1) and copy_length
// blanks; the target is blank everywhere except the last copy_length steps,
// which must repeat the symbols. Length L = 2 copy_length + delay; x one-hot
// [L, num_symbols + 2], y [L] class indices. A model that never remembers
// scores copy_length ln(num_symbols) / L nats per step.
class CopyTask : public Sampler {
 public:
  // InvalidArgument unless num_symbols >= 1, copy_length >= 1, delay >= 1.
  static absl::StatusOr<std::unique_ptr<CopyTask>> Create(int num_symbols,
                                                          int64_t copy_length,
                                                          int64_t delay);

  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  int num_classes() const override { return num_symbols_ + 2; }
  void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const override;
  // Cross-entropy per step of the best memoryless predictor.
  double MemorylessCrossEntropy() const;

 private:
  CopyTask(int num_symbols, int64_t copy_length, int64_t delay);
  int num_symbols_;
  int64_t copy_length_, delay_;
  Shape sample_shape_, target_shape_;
};

// Samples x [1] ~ N(mean, stddev^2).
class Gaussian1D : public Sampler {
 public:
  // InvalidArgument unless stddev > 0 and both are finite.
  static absl::StatusOr<std::unique_ptr<Gaussian1D>> Create(float mean,
                                                            float stddev);
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const override;

 private:
  Gaussian1D(float mean, float stddev) : mean_(mean), stddev_(stddev) {}
  float mean_, stddev_;
  Shape sample_shape_{1}, target_shape_;
};

// A ring of `modes` 2-D Gaussians (Metz et al. 2017): mode k is centred at
// radius (cos 2 pi k / modes, sin 2 pi k / modes) with per-axis stddev;
// x [2].
class GaussianRing : public Sampler {
 public:
  // InvalidArgument unless modes >= 1, radius >= 0 and stddev > 0.
  static absl::StatusOr<std::unique_ptr<GaussianRing>> Create(int modes,
                                                              float radius,
                                                              float stddev);
  const Shape& sample_shape() const override { return sample_shape_; }
  const Shape& target_shape() const override { return target_shape_; }
  void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const override;
  // Centre of mode k.
  std::array<float, 2> Centre(int k) const;
  int modes() const { return modes_; }

 private:
  GaussianRing(int modes, float radius, float stddev)
      : modes_(modes), radius_(radius), stddev_(stddev) {}
  int modes_;
  float radius_, stddev_;
  Shape sample_shape_{2}, target_shape_;
};

// Draws samples of a data set uniformly with replacement, inputs only
// (real images for a GAN). `data` must outlive the sampler.
class DatasetSampler : public Sampler {
 public:
  // REQUIRES: data->size() >= 1.
  explicit DatasetSampler(const Dataset* data) : data_(data) {}
  const Shape& sample_shape() const override { return data_->sample_shape(); }
  const Shape& target_shape() const override { return target_shape_; }
  void Sample(int64_t n, Rng* rng, Tensor* x, Tensor* y) const override;

 private:
  const Dataset* data_;
  Shape target_shape_;
};

// MNIST digits (8,000 / 2,000, DefaultDatasetsDir()/mnist) read row by row:
// samples [28, 28] = 28 steps of 28 pixels.
absl::StatusOr<TrainTest> LoadMnistRows(const std::string& dir);

// Packs sequences of `features` floats per step (each a flat vector of
// T * features values) into [N, T, features]. InvalidArgument for an empty
// list, features < 1, a sequence of length zero or not a whole number of
// steps, or sequences of unequal length (a dense batch has no mask).
absl::StatusOr<Tensor> PackSequences(
    const std::vector<std::vector<float>>& sequences, int64_t features);

// A text file as a character-level corpus: a vocabulary of the distinct
// bytes of the text (sorted), windows for next-character training, the
// unigram baseline (GenerateText in core/model/sequence_model.h samples
// text from a model trained on it). Immutable.
class CharCorpus {
 public:
  // InvalidArgument if the text has fewer than 2 characters.
  static absl::StatusOr<CharCorpus> FromText(std::string text);
  // NotFound if the file cannot be read; then as FromText.
  static absl::StatusOr<CharCorpus> FromFile(const std::string& path);

  const std::string& text() const { return text_; }
  int64_t size() const { return static_cast<int64_t>(text_.size()); }
  int vocab_size() const { return static_cast<int>(chars_.size()); }
  // Index of `c` in the vocabulary, or -1.
  int Index(char c) const { return index_[static_cast<unsigned char>(c)]; }
  char Char(int index) const { return chars_[index]; }

  // Training windows over text[begin, end): window k covers characters
  // begin + k stride ... + length; x one-hot [n, length, V], y [n, length]
  // the next character's index at each step (per-step class indices, see
  // SampleDataset). InvalidArgument for a bad range, length < 1, stride < 1
  // or a range shorter than length + 1.
  absl::StatusOr<std::unique_ptr<TensorDataset>> Windows(int64_t begin,
                                                         int64_t end,
                                                         int64_t length,
                                                         int64_t stride) const;

  // Random training windows over text[begin, end), drawn on demand: each
  // sample is `length` one-hot characters [length, V] from a uniformly
  // drawn start and targets [length], the next character at each step.
  // The sampler keeps a pointer to this corpus, which must outlive it.
  // InvalidArgument as for Windows().
  absl::StatusOr<std::unique_ptr<Sampler>> WindowSampler(int64_t begin,
                                                         int64_t end,
                                                         int64_t length) const;

  // Cross-entropy in nats per character of text[eval_begin, eval_end)
  // under the unigram distribution of text[train_begin, train_end)
  // (add-one smoothed): the baseline a sequence model must beat.
  double UnigramCrossEntropy(int64_t train_begin, int64_t train_end,
                             int64_t eval_begin, int64_t eval_end) const;

 private:
  CharCorpus() = default;
  absl::Status CheckRange(int64_t begin, int64_t end, int64_t length) const;
  std::string text_;
  std::vector<char> chars_;
  std::array<int, 256> index_;
};

}  // namespace nnlab

#endif  // NNLAB_CORE_DATA_SEQUENCE_DATA_H_

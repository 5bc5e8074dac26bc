#include "core/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

using ::testing::HasSubstr;

// The message as a std::string, so failures print it as text.
std::string Msg(const absl::Status& status) {
  return std::string(status.message());
}

// IDX bytes: big-endian magic and dims, then the payload.
std::vector<uint8_t> Idx(uint32_t magic, std::vector<uint32_t> dims,
                         const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out;
  auto put = [&out](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(v >> shift);
  };
  put(magic);
  for (uint32_t d : dims) put(d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::string WriteFile(const std::string& name,
                      const std::vector<uint8_t>& bytes) {
  const std::string path = ::testing::TempDir() + "data_test_" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr) << path;
  if (f == nullptr) return path;
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return path;
}

// A valid pair: `n` images of 2x3 with pixel value i*10+k, labels i % 3.
struct SmallIdx {
  std::string images, labels;
};
SmallIdx WriteSmall(const std::string& tag, int n) {
  std::vector<uint8_t> pixels, labels;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 6; ++k) pixels.push_back(i * 10 + k);
    labels.push_back(i % 3);
  }
  return {WriteFile(tag + "_images", Idx(0x803, {uint32_t(n), 2, 3}, pixels)),
          WriteFile(tag + "_labels", Idx(0x801, {uint32_t(n)}, labels))};
}

// Real data ------------------------------------------------------------------

TEST(MnistTest, LoadsTheSplitWithRealLabelsAndPixels) {
  auto sets = LoadMnist(DefaultDatasetsDir());
  ASSERT_TRUE(sets.ok()) << sets.status()
                         << " (run scripts/fetch_data.sh first)";
  const ImageDataset& train = *sets->train;
  const ImageDataset& test = *sets->test;
  EXPECT_EQ(train.size(), 8000);
  EXPECT_EQ(test.size(), 2000);
  EXPECT_EQ(train.sample_shape(), Shape{784});
  EXPECT_TRUE(train.target_shape().empty());
  EXPECT_EQ(train.num_classes(), 10);

  // Observed once in data/mnist/digits-labels-idx1-ubyte as produced by
  // scripts/fetch_data.sh (bytes 8..: 08 03 07 00 ...); the checksum in
  // scripts/data.sha256 pins the file, so these cannot drift.
  EXPECT_EQ(train.labels()[0], 8);
  EXPECT_EQ(train.labels()[1], 3);
  EXPECT_EQ(train.labels()[2], 7);

  // Every class appears in both parts, in roughly its share (~10%).
  for (const ImageDataset* part : {&train, &test}) {
    std::vector<int> count(10, 0);
    for (uint8_t l : part->labels()) ++count[l];
    for (int c = 0; c < 10; ++c) {
      EXPECT_GT(count[c], part->size() * 6 / 100) << "class " << c;
      EXPECT_LT(count[c], part->size() * 14 / 100) << "class " << c;
    }
  }

  // Gather scales to [0, 1], and real digits use the whole range.
  Tensor x, y;
  std::vector<int64_t> idx(test.size());
  for (int64_t i = 0; i < test.size(); ++i) idx[i] = i;
  test.Gather(idx, &x, &y);
  ASSERT_EQ(x.shape(), (Shape{2000, 784}));
  ASSERT_EQ(y.shape(), Shape{2000});
  float lo = 1, hi = 0;
  for (int64_t i = 0; i < x.size(); ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
  for (int64_t i = 0; i < 2000; ++i) {
    EXPECT_EQ(y[i], static_cast<float>(test.labels()[i]));
    EXPECT_EQ(x[i * 784 + 300], test.pixels()[i * 784 + 300] / 255.0f);
  }
}

TEST(FashionMnistTest, LoadsTrainAndTest) {
  auto sets = LoadFashionMnist(DefaultDatasetsDir());
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->train->size(), 60000);
  EXPECT_EQ(sets->test->size(), 10000);
  // The published first labels: 9 (ankle boot) in train, 9 in t10k.
  EXPECT_EQ(sets->train->labels()[0], 9);
  EXPECT_EQ(sets->test->labels()[0], 9);
}

TEST(DatasetsDirTest, EnvironmentOverridesTheBuildDefault) {
  const char* old = std::getenv("NNLAB_DATASETS_DIR");
  const std::string saved = old ? old : "";
  setenv("NNLAB_DATASETS_DIR", "/somewhere/else", 1);
  EXPECT_EQ(DefaultDatasetsDir(), "/somewhere/else");
  unsetenv("NNLAB_DATASETS_DIR");
  EXPECT_EQ(DefaultDatasetsDir(), NNLAB_DEFAULT_DATASETS_DIR);
  if (old) setenv("NNLAB_DATASETS_DIR", saved.c_str(), 1);
}

// Small files ----------------------------------------------------------------

TEST(LoadIdxTest, ReadsPixelsAndLabels) {
  SmallIdx f = WriteSmall("ok", 4);
  auto data = LoadIdx(f.images, f.labels, 3);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->size(), 4);
  EXPECT_EQ((*data)->sample_shape(), Shape{6});
  Tensor x, y;
  std::vector<int64_t> idx = {2, 0};
  (*data)->Gather(idx, &x, &y);
  ASSERT_EQ(x.shape(), (Shape{2, 6}));
  EXPECT_EQ(x[0], 20 / 255.0f);
  EXPECT_EQ(x[5], 25 / 255.0f);
  EXPECT_EQ(x[6], 0.0f);
  EXPECT_EQ(x[11], 5 / 255.0f);
  EXPECT_EQ(y[0], 2.0f);
  EXPECT_EQ(y[1], 0.0f);

  ASSERT_TRUE((*data)->Reshape({2, 3}).ok());
  (*data)->Gather(idx, &x, &y);
  EXPECT_EQ(x.shape(), (Shape{2, 2, 3}));
  absl::Status bad = (*data)->Reshape({7});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(bad), HasSubstr("[2, 3]"));

  auto part = (*data)->Slice(1, 3);
  EXPECT_EQ(part->size(), 2);
  EXPECT_EQ(part->labels()[0], 1);
  EXPECT_EQ(part->pixels()[0], 10);
}

TEST(LoadIdxTest, TruncatedImagesAreInvalid) {
  SmallIdx f = WriteSmall("trunc", 4);
  std::vector<uint8_t> pixels(4 * 6 - 5, 7);
  const std::string images =
      WriteFile("trunc_images", Idx(0x803, {4, 2, 3}, pixels));
  auto data = LoadIdx(images, f.labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr(images));
  EXPECT_THAT(Msg(data.status()),
              HasSubstr("truncated: header says 4 images of 2x3 but file has "
                        "19 bytes of pixel data"));
}

TEST(LoadIdxTest, HugeHeaderCountIsTruncatedNotAnOverflow) {
  SmallIdx f = WriteSmall("huge", 4);
  const std::string images =
      WriteFile("huge_images",
                Idx(0x803, {0xffffffffu, 0xffffffffu, 0xffffffffu}, {1, 2, 3}));
  auto data = LoadIdx(images, f.labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr("truncated"));
}

TEST(LoadIdxTest, ShortHeaderIsInvalid) {
  SmallIdx f = WriteSmall("short", 4);
  const std::string images = WriteFile("short_images", {0, 0, 8, 3, 0, 0});
  auto data = LoadIdx(images, f.labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr("too short"));
}

TEST(LoadIdxTest, WrongMagicIsInvalid) {
  SmallIdx f = WriteSmall("magic", 4);
  // Images and labels swapped: each has the other's magic.
  auto data = LoadIdx(f.labels, f.images, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr(f.labels));
  EXPECT_THAT(Msg(data.status()),
              HasSubstr("wrong magic 0x00000801, expected 0x00000803"));
  // A float IDX file (type byte 0x0d) is not uint8 images either.
  const std::string floats =
      WriteFile("magic_float", Idx(0xd03, {1, 1, 1}, {0, 0, 0, 0}));
  data = LoadIdx(floats, f.labels, 3);
  EXPECT_THAT(Msg(data.status()), HasSubstr("wrong magic 0x00000d03"));
}

TEST(LoadIdxTest, LabelOutOfRangeIsInvalid) {
  SmallIdx f = WriteSmall("range", 4);
  const std::string labels =
      WriteFile("range_labels", Idx(0x801, {4}, {0, 1, 3, 2}));
  auto data = LoadIdx(f.images, labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr(labels));
  EXPECT_THAT(Msg(data.status()),
              HasSubstr("label 3 at index 2 is out of range for 3 classes"));
  // The same file is fine with 4 classes.
  EXPECT_TRUE(LoadIdx(f.images, labels, 4).ok());
}

TEST(LoadIdxTest, CountMismatchIsInvalid) {
  SmallIdx f = WriteSmall("count", 4);
  const std::string labels =
      WriteFile("count_labels", Idx(0x801, {3}, {0, 1, 2}));
  auto data = LoadIdx(f.images, labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr("has 3 labels but"));
  EXPECT_THAT(Msg(data.status()), HasSubstr("has 4 images"));
  // A label file whose header promises more than it holds.
  const std::string short_labels =
      WriteFile("count_short_labels", Idx(0x801, {4}, {0, 1}));
  data = LoadIdx(f.images, short_labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr("truncated"));
}

TEST(LoadIdxTest, TrailingBytesAreInvalid) {
  SmallIdx f = WriteSmall("trail", 1);
  const std::string images =
      WriteFile("trail_images", Idx(0x803, {1, 2, 3}, {1, 2, 3, 4, 5, 6, 7}));
  auto data = LoadIdx(images, f.labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr("1 bytes more"));
}

TEST(LoadIdxTest, MissingFileIsNotFound) {
  SmallIdx f = WriteSmall("missing", 2);
  const std::string nowhere = ::testing::TempDir() + "data_test_no_such";
  auto data = LoadIdx(nowhere, f.labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(data.status()), HasSubstr(nowhere));
  data = LoadIdx(f.images, nowhere, 3);
  EXPECT_EQ(data.status().code(), absl::StatusCode::kNotFound);
  auto sets = LoadMnist(::testing::TempDir() + "data_test_no_dir");
  EXPECT_EQ(sets.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(sets.status()), HasSubstr("digits-images-idx3-ubyte"));
}

TEST(LoadIdxTest, DirectoryIsNotAFile) {
  SmallIdx f = WriteSmall("dir", 2);
  auto data = LoadIdx(::testing::TempDir(), f.labels, 3);
  ASSERT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(data.status()), HasSubstr("not a regular file"));
}

// TensorDataset --------------------------------------------------------------

TEST(TensorDatasetTest, GathersClassesAndRegressionTargets) {
  Tensor x({3, 2});
  for (int i = 0; i < 6; ++i) x[i] = i;
  Tensor y({3});
  y[0] = 2;
  y[1] = 0;
  y[2] = 1;
  auto data = TensorDataset::Create(std::move(x), std::move(y), 3);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ((*data)->size(), 3);
  EXPECT_EQ((*data)->sample_shape(), Shape{2});
  EXPECT_TRUE((*data)->target_shape().empty());
  Tensor bx, by;
  std::vector<int64_t> idx = {2, 0};
  (*data)->Gather(idx, &bx, &by);
  EXPECT_EQ(bx.shape(), (Shape{2, 2}));
  EXPECT_EQ(bx[0], 4.0f);
  EXPECT_EQ(bx[1], 5.0f);
  EXPECT_EQ(bx[2], 0.0f);
  EXPECT_EQ(by.shape(), Shape{2});
  EXPECT_EQ(by[0], 1.0f);
  EXPECT_EQ(by[1], 2.0f);

  Tensor rx({2, 1}), ry({2, 2});
  rx[1] = 1;
  ry[2] = 0.5f;
  ry[3] = -0.5f;
  auto reg = TensorDataset::Create(std::move(rx), std::move(ry), 0);
  ASSERT_TRUE(reg.ok()) << reg.status();
  EXPECT_EQ((*reg)->target_shape(), Shape{2});
  idx = {1};
  (*reg)->Gather(idx, &bx, &by);
  EXPECT_EQ(by.shape(), (Shape{1, 2}));
  EXPECT_EQ(by[0], 0.5f);
  EXPECT_EQ(by[1], -0.5f);
}

TEST(TensorDatasetTest, RejectsBadInput) {
  auto make = [](Shape xs, Shape ys, int classes, float label) {
    Tensor x(xs), y(ys);
    if (y.size() > 0) y[0] = label;
    return Msg(
        TensorDataset::Create(std::move(x), std::move(y), classes).status());
  };
  EXPECT_THAT(make({3, 2}, {2}, 3, 0), HasSubstr("y: expected 3"));
  EXPECT_THAT(make({3}, {3}, 3, 0), HasSubstr("x: expected shape"));
  EXPECT_THAT(make({3, 2}, {3}, 3, 3), HasSubstr("label 3 at index 0"));
  EXPECT_THAT(make({3, 2}, {3}, 3, 0.5f), HasSubstr("label 0.5"));
  EXPECT_THAT(make({3, 2}, {3}, 0, 0), HasSubstr("regression targets"));
  EXPECT_THAT(make({3, 2}, {3}, -1, 0), HasSubstr("num_classes"));
  Tensor x({1, 1}), y({1});
  x[0] = std::nanf("");
  EXPECT_EQ(
      TensorDataset::Create(std::move(x), std::move(y), 2).status().code(),
      absl::StatusCode::kInvalidArgument);
}

// BatchIterator --------------------------------------------------------------

// A data set whose sample i is the single value i, label i % 2.
std::unique_ptr<TensorDataset> Counting(int n) {
  Tensor x({n, 1}), y({n});
  for (int i = 0; i < n; ++i) {
    x[i] = i;
    y[i] = i % 2;
  }
  return std::move(TensorDataset::Create(std::move(x), std::move(y), 2))
      .value();
}

// The sample ids of one epoch, batch by batch.
std::vector<std::vector<int>> Epoch(BatchIterator* it) {
  std::vector<std::vector<int>> batches;
  Tensor x, y;
  it->StartEpoch();
  while (it->Next(&x, &y)) {
    std::vector<int> ids;
    for (int64_t i = 0; i < x.dim(0); ++i) {
      ids.push_back(static_cast<int>(x[i]));
      EXPECT_EQ(y[i], ids.back() % 2);
    }
    batches.push_back(ids);
  }
  return batches;
}

TEST(BatchIteratorTest, ShuffledEpochsCoverEveryIndexOnce) {
  auto data = Counting(103);
  Rng rng(7);
  BatchIterator it(data.get(), 10, /*shuffle=*/true, &rng);
  EXPECT_EQ(it.batches_per_epoch(), 11);
  std::vector<int> previous;
  for (int epoch = 0; epoch < 3; ++epoch) {
    auto batches = Epoch(&it);
    ASSERT_EQ(batches.size(), 11u);
    for (size_t b = 0; b + 1 < batches.size(); ++b) {
      EXPECT_EQ(batches[b].size(), 10u);
    }
    EXPECT_EQ(batches.back().size(), 3u);  // 103 = 10 * 10 + 3.
    std::vector<int> all;
    for (const auto& b : batches) all.insert(all.end(), b.begin(), b.end());
    std::multiset<int> seen(all.begin(), all.end());
    ASSERT_EQ(seen.size(), 103u);
    for (int i = 0; i < 103; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
    // Shuffled, and differently each epoch.
    std::vector<int> sorted(all);
    std::sort(sorted.begin(), sorted.end());
    EXPECT_NE(all, sorted);
    EXPECT_NE(all, previous);
    previous = all;
  }
}

TEST(BatchIteratorTest, WithoutShuffleIsInOrder) {
  auto data = Counting(5);
  BatchIterator it(data.get(), 2, /*shuffle=*/false, nullptr);
  EXPECT_EQ(Epoch(&it), (std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4}}));
  EXPECT_EQ(Epoch(&it), (std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4}}));
}

TEST(BatchIteratorTest, SameSeedSameOrderAndResumable) {
  auto data = Counting(50);
  Rng a(42), b(42), c(43);
  BatchIterator ia(data.get(), 8, true, &a);
  BatchIterator ib(data.get(), 8, true, &b);
  BatchIterator ic(data.get(), 8, true, &c);
  auto first_a = Epoch(&ia);
  EXPECT_EQ(first_a, Epoch(&ib));
  EXPECT_NE(first_a, Epoch(&ic));

  // Resume mid-epoch: restore the RNG state saved at the epoch's start,
  // start the epoch, skip the batches already done.
  const std::string saved = a.Save();
  auto second_a = Epoch(&ia);
  Rng r;
  ASSERT_TRUE(r.Restore(saved).ok());
  BatchIterator ir(data.get(), 8, true, &r);
  ir.StartEpoch();
  ir.SkipTo(4);
  EXPECT_EQ(ir.batch_index(), 4);
  Tensor x, y;
  std::vector<int> rest;
  while (ir.Next(&x, &y)) {
    for (int64_t i = 0; i < x.dim(0); ++i) rest.push_back(x[i]);
  }
  std::vector<int> expected;
  for (size_t k = 4; k < second_a.size(); ++k) {
    expected.insert(expected.end(), second_a[k].begin(), second_a[k].end());
  }
  EXPECT_EQ(rest, expected);
}

}  // namespace
}  // namespace nnlab

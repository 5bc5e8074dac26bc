// Data-parallel training in one process: N replicas (threads joined by an
// in-process Collective) at per-replica batch b train like one process at
// batch N x b, up to the order of the floating-point sums: the same losses
// and accuracies step by step, and the same weights, within 1e-5 relative.
// Also: the batch shards, the short last batch (weighted by slice size,
// including replicas with an empty slice), statistics on rank 0 only, and
// batch norm, which differs by design (per-replica batch statistics).
// Evaluation is sharded too: every rank evaluates its slice of the test set
// and one allreduce gives all of them the one-process result.
#include "core/train/collective.h"

#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/status_macros.h"
#include "core/tensor/rng.h"
#include "core/train/trainer.h"
#include "gtest/gtest.h"

namespace nnlab {
namespace {

// N ranks in one process: the last to arrive sums the buffers in rank
// order, divides by N and writes the mean back to every rank.
class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), ptrs_(n) {
    for (int r = 0; r < n; ++r) members_.emplace_back(new Member(this, r));
  }
  Collective* member(int r) { return members_[r].get(); }
  int calls() const { return calls_; }

 private:
  class Member final : public Collective {
   public:
    Member(ThreadGroup* g, int rank) : g_(g), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return g_->n_; }
    absl::Status AllreduceAverage(
        absl::Span<const absl::Span<float>> buffers) override {
      return g_->Average(rank_, buffers);
    }

   private:
    ThreadGroup* g_;
    int rank_;
  };

  absl::Status Average(int rank, absl::Span<const absl::Span<float>> buffers) {
    std::unique_lock<std::mutex> lock(mu_);
    ptrs_[rank] = buffers;
    const int64_t generation = generation_;
    if (++arrived_ < n_) {
      cv_.wait(lock, [&] { return generation_ != generation; });
      return absl::OkStatus();
    }
    for (size_t b = 0; b < buffers.size(); ++b) {
      for (size_t i = 0; i < buffers[b].size(); ++i) {
        float sum = 0;
        for (int r = 0; r < n_; ++r) {
          if (ptrs_[r].size() != buffers.size() ||
              ptrs_[r][b].size() != buffers[b].size()) {
            return absl::InternalError("ranks disagree on buffer sizes");
          }
          sum += ptrs_[r][b][i];
        }
        for (int r = 0; r < n_; ++r) ptrs_[r][b][i] = sum / n_;
      }
    }
    ++calls_;
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return absl::OkStatus();
  }

  const int n_;
  std::vector<std::unique_ptr<Member>> members_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<absl::Span<const absl::Span<float>>> ptrs_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  int calls_ = 0;
};

LayerSpec Layer(const std::string& kind, int64_t units = 0) {
  LayerSpec l;
  l.kind = kind;
  l.units = units;
  return l;
}

ModelSpec Mlp(bool batch_norm) {
  ModelSpec spec;
  spec.input_shape = {6};
  spec.init = InitKind::kHe;
  spec.seed = 11;
  spec.layers = {Layer("dense", 16), Layer("tanh"), Layer("dense", 12),
                 Layer("relu"), Layer("dense", 3)};
  if (batch_norm)
    spec.layers.insert(spec.layers.begin() + 1, Layer("batch_norm"));
  return spec;
}

std::unique_ptr<Dataset> Data(int64_t n, uint64_t seed = 3) {
  Rng rng(seed);
  Tensor x({n, 6}), y({n});
  rng.FillNormal(x.data(), x.size());
  for (int64_t i = 0; i < n; ++i)
    y[i] = float((x[i * 6] > 0) + (x[i * 6 + 1] > 0.3f));
  auto d = TensorDataset::Create(std::move(x), std::move(y), 3);
  NNLAB_CHECK(d.ok());
  return std::move(d).value();
}

struct Options {
  OptimizerKind optimizer = OptimizerKind::kMomentum;
  int64_t batch = 4;   // Per replica.
  int64_t global = 0;  // TrainOptions::global_batch_size.
  int64_t samples = 48;
  bool batch_norm = false;
  float weight_decay = 0;
  float clip_norm = 0;
  int64_t test_samples = 0;  // 0: no test set.
};

struct Result {
  std::vector<StepStats> steps;                // Rank 0's.
  std::vector<std::vector<Tensor>> weights;    // Per rank.
  std::vector<absl::Status> status;            // Per rank.
  std::vector<std::vector<EvalResult>> evals;  // Per rank.
};

// Trains `replicas` replicas at o.batch each for 3 epochs.
Result Train(int replicas, const Options& o) {
  auto data = Data(o.samples);
  auto test = o.test_samples > 0 ? Data(o.test_samples, 8) : nullptr;
  ThreadGroup group(replicas);
  Result result;
  result.weights.resize(replicas);
  result.status.resize(replicas);
  result.evals.resize(replicas);
  std::vector<std::thread> threads;
  for (int r = 0; r < replicas; ++r) {
    threads.emplace_back([&, r] {
      auto model = Model::Build(Mlp(o.batch_norm));
      NNLAB_CHECK(model.ok());
      TrainOptions t;
      t.optimizer.kind = o.optimizer;
      t.optimizer.lr = o.optimizer == OptimizerKind::kAdam ? 0.01f : 0.05f;
      t.optimizer.weight_decay = o.weight_decay;
      t.optimizer.clip_norm = o.clip_norm;
      t.epochs = 3;
      t.batch_size = o.batch;
      t.global_batch_size = o.global;
      t.stats_every = 2;
      t.shuffle_seed = 5;
      auto trainer = Trainer::Create(model->get(), t);
      NNLAB_CHECK(trainer.ok());
      if (replicas > 1) (*trainer)->set_collective(group.member(r));
      Trainer::Callbacks cb;
      cb.on_step = [&](const StepStats& s) {
        if (r == 0) result.steps.push_back(s);
        if (r != 0 && !s.layers.empty()) {
          return absl::InternalError("layer statistics on a rank other than 0");
        }
        return absl::OkStatus();
      };
      cb.on_eval = [&, r](const StepStats&, const EvalResult& e) {
        result.evals[r].push_back(e);
      };
      result.status[r] = (*trainer)->Run(*data, test.get(), cb);
      for (const Param& p : (*model)->Params())
        result.weights[r].push_back(p.value->Clone());
    });
  }
  for (std::thread& t : threads) t.join();
  return result;
}

double RelDiff(double a, double b) {
  return std::abs(a - b) / std::max(std::abs(a), std::abs(b));
}

// ||a - b|| / ||b||.
double RelDiff(const Tensor& a, const Tensor& b) {
  double d = 0, n = 0;
  for (int64_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    n += double(b[i]) * b[i];
  }
  return std::sqrt(d / n);
}

void ExpectSameRun(int replicas, Options o, double tol = 1e-5) {
  Options single = o;
  single.batch = o.batch * replicas;
  const Result one = Train(1, single);
  const Result many = Train(replicas, o);
  for (int r = 0; r < replicas; ++r)
    ASSERT_TRUE(many.status[r].ok()) << many.status[r];
  ASSERT_TRUE(one.status[0].ok()) << one.status[0];
  ASSERT_EQ(one.steps.size(), many.steps.size());
  for (size_t i = 0; i < one.steps.size(); ++i) {
    EXPECT_LE(RelDiff(one.steps[i].loss, many.steps[i].loss), tol)
        << "step " << i + 1 << ": " << one.steps[i].loss << " vs "
        << many.steps[i].loss;
    EXPECT_NEAR(one.steps[i].accuracy, many.steps[i].accuracy, 1e-6)
        << "step " << i + 1;
    EXPECT_LE(RelDiff(one.steps[i].grad_norm, many.steps[i].grad_norm), tol)
        << "step " << i + 1;
    EXPECT_EQ(one.steps[i].layers.size(), many.steps[i].layers.size());
  }
  for (size_t p = 0; p < one.weights[0].size(); ++p) {
    EXPECT_LE(RelDiff(many.weights[0][p], one.weights[0][p]), tol)
        << "param " << p;
    // Every replica applied the same averaged gradient: bit for bit equal.
    for (int r = 1; r < replicas; ++r) {
      for (int64_t i = 0; i < many.weights[r][p].size(); ++i) {
        ASSERT_EQ(many.weights[r][p][i], many.weights[0][p][i])
            << "rank " << r << " param " << p;
      }
    }
  }
}

TEST(BatchIteratorShardTest, ShardsPartitionEachGlobalBatch) {
  auto data = Data(10);
  Rng a(9), b(9);
  BatchIterator whole(data.get(), 8, true, &a);
  whole.StartEpoch();
  std::vector<BatchIterator> shards;
  std::vector<Rng> rngs(3, Rng(9));
  for (int s = 0; s < 3; ++s) {
    shards.emplace_back(data.get(), 8, true, &rngs[s]);
    shards.back().SetShard(s, 3);
    shards.back().StartEpoch();
  }
  Tensor x, y, sx, sy;
  // Batches of 8 (shards 2, 3, 3) and 2 (shards 0, 1, 1).
  const std::vector<std::vector<int64_t>> sizes = {{2, 3, 3}, {0, 1, 1}};
  for (const auto& want : sizes) {
    ASSERT_TRUE(whole.Next(&x, &y));
    int64_t row = 0;
    for (int s = 0; s < 3; ++s) {
      ASSERT_TRUE(shards[s].Next(&sx, &sy));
      EXPECT_EQ(shards[s].global_batch_size(), x.dim(0));
      ASSERT_EQ(shards[s].shard_batch_size(), want[s]);
      for (int64_t i = 0; i < want[s] * 6; ++i)
        ASSERT_EQ(sx[i], x[row * 6 + i]);
      row += want[s];
    }
    EXPECT_EQ(row, x.dim(0));
  }
  EXPECT_FALSE(whole.Next(&x, &y));
  EXPECT_FALSE(shards[0].Next(&sx, &sy));
}

TEST(DataParallelTest, TwoReplicasEqualOneAtTwiceTheBatch) {
  ExpectSameRun(2, Options());
}

TEST(DataParallelTest, FourReplicasEqualOneAtFourTimesTheBatch) {
  ExpectSameRun(4, Options());
}

// A 3-replica job resumed on 2 (JobSpec.min_replicas): the global batch
// is fixed, the slices grow (6 each instead of 4), the run is the same.
TEST(DataParallelTest, FewerReplicasKeepTheGlobalBatch) {
  Options single;
  single.batch = 12;
  Options two;
  two.global = 12;
  const Result one = Train(1, single);
  const Result many = Train(2, two);
  ASSERT_TRUE(one.status[0].ok()) << one.status[0];
  for (const absl::Status& st : many.status) ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(one.steps.size(), 12u);  // 48 samples / 12, 3 epochs.
  ASSERT_EQ(many.steps.size(), one.steps.size());
  for (size_t i = 0; i < one.steps.size(); ++i) {
    EXPECT_LE(RelDiff(one.steps[i].loss, many.steps[i].loss), 1e-5)
        << "step " << i + 1;
  }
  for (size_t p = 0; p < one.weights[0].size(); ++p) {
    EXPECT_LE(RelDiff(many.weights[0][p], one.weights[0][p]), 1e-5)
        << "param " << p;
  }
}

TEST(DataParallelTest, AdamWithWeightDecayAndClipping) {
  Options o;
  o.optimizer = OptimizerKind::kAdam;
  o.weight_decay = 1e-3f;
  o.clip_norm = 0.5f;
  ExpectSameRun(2, o);
}

TEST(DataParallelTest, ShortLastBatchIsWeightedBySliceSize) {
  Options o;
  o.batch = 4;
  o.samples = 44;  // Global batch 12: the last has 8, sliced 2, 3, 3.
  ExpectSameRun(3, o);
  o.batch = 2;
  o.samples = 42;  // Global batch 8: the last has 2, sliced 0, 0, 1, 1.
  ExpectSameRun(4, o);
}

TEST(DataParallelTest, StatisticsOnRankZeroAndOneAllreducePerStep) {
  auto data = Data(48);
  ThreadGroup group(2);
  std::vector<int64_t> stats_steps[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      auto model = Model::Build(Mlp(false));
      NNLAB_CHECK(model.ok());
      TrainOptions t;
      t.batch_size = 4;
      t.stats_every = 1;
      auto trainer = Trainer::Create(model->get(), t);
      NNLAB_CHECK(trainer.ok());
      (*trainer)->set_collective(group.member(r));
      Trainer::Callbacks cb;
      cb.on_step = [&](const StepStats& s) {
        if (!s.layers.empty()) stats_steps[r].push_back(s.step);
        EXPECT_GE(s.comm_seconds, 0);
        return absl::OkStatus();
      };
      EXPECT_TRUE((*trainer)->Run(*data, nullptr, cb).ok());
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(group.calls(), 6);  // 48 samples / global batch 8.
  EXPECT_EQ(stats_steps[0].size(), 6u);
  EXPECT_TRUE(stats_steps[1].empty());
}

// Documented difference: batch norm normalises with each replica's own
// batch statistics, so the first step's loss already differs from one
// process normalising over the global batch.
TEST(DataParallelTest, BatchNormUsesPerReplicaStatistics) {
  Options o;
  o.batch_norm = true;
  Options single = o;
  single.batch = 8;
  const Result one = Train(1, single);
  const Result many = Train(2, o);
  ASSERT_TRUE(one.status[0].ok() && many.status[0].ok());
  EXPECT_GT(RelDiff(one.steps[0].loss, many.steps[0].loss), 1e-4);
}

// A data set that counts the samples gathered from it: which work each
// rank did.
class CountingView final : public Dataset {
 public:
  explicit CountingView(const Dataset& base) : base_(base) {}
  int64_t size() const override { return base_.size(); }
  const Shape& sample_shape() const override { return base_.sample_shape(); }
  const Shape& target_shape() const override { return base_.target_shape(); }
  int num_classes() const override { return base_.num_classes(); }
  void Gather(absl::Span<const int64_t> idx, Tensor* x,
              Tensor* y) const override {
    gathered_ += static_cast<int64_t>(idx.size());
    base_.Gather(idx, x, y);
  }
  int64_t gathered() const { return gathered_; }

 private:
  const Dataset& base_;
  mutable int64_t gathered_ = 0;
};

// EvaluateSharded on `ranks` in-process ranks over `n` samples at batch
// `batch` equals one process's Evaluate: exact counts, loss within 1e-6
// relative (float loss sums, another summation order); one collective call,
// and rank r evaluated exactly its slice [r*n/N, (r+1)*n/N).
void ExpectShardedEvalEqualsOne(int ranks, int64_t n, int64_t batch) {
  SCOPED_TRACE(testing::Message() << ranks << " ranks, " << n << " samples");
  auto data = Data(n, 8);
  auto model = Model::Build(Mlp(false));
  ASSERT_TRUE(model.ok());
  auto one = Evaluate(model->get(), *data, batch);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->samples, n);
  ThreadGroup group(ranks);
  std::vector<absl::StatusOr<EvalResult>> got(ranks);
  std::vector<int64_t> gathered(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      auto replica = Model::Build(Mlp(false));  // Same seed: same weights.
      NNLAB_CHECK(replica.ok());
      const CountingView view(*data);
      got[r] = EvaluateSharded(replica->get(), view, batch, group.member(r));
      gathered[r] = view.gathered();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(group.calls(), 1);
  for (int r = 0; r < ranks; ++r) {
    ASSERT_TRUE(got[r].ok()) << "rank " << r << ": " << got[r].status();
    EXPECT_EQ(got[r]->samples, n) << "rank " << r;
    EXPECT_LE(RelDiff(got[r]->loss, one->loss), 1e-6)
        << "rank " << r << ": " << got[r]->loss << " vs " << one->loss;
    // correct / n with the same integers: the same double.
    EXPECT_EQ(got[r]->accuracy, one->accuracy) << "rank " << r;
    EXPECT_EQ(gathered[r], (r + 1) * n / ranks - r * n / ranks) << "rank " << r;
  }
}

TEST(ShardedEvalTest, TwoAndThreeRanksEqualOneProcess) {
  ExpectShardedEvalEqualsOne(2, 48, 5);
  ExpectShardedEvalEqualsOne(3, 48, 5);
}

TEST(ShardedEvalTest, SizeNotDivisibleByTheRanks) {
  ExpectShardedEvalEqualsOne(2, 47, 4);  // Slices 23, 24.
  ExpectShardedEvalEqualsOne(3, 47, 4);  // Slices 15, 16, 16.
  ExpectShardedEvalEqualsOne(3, 1001, 256);
}

TEST(ShardedEvalTest, RankWithAnEmptySlice) {
  ExpectShardedEvalEqualsOne(3, 2, 4);  // Slices 0, 1, 1.
  ExpectShardedEvalEqualsOne(4, 3, 4);  // Slices 0, 1, 1, 1.
}

TEST(ShardedEvalTest, EmptyDataSetFailsOnEveryRankWithoutACall) {
  Tensor x({0, 6}), y({0});
  auto empty = TensorDataset::Create(std::move(x), std::move(y), 3);
  if (!empty.ok()) GTEST_SKIP() << "no empty TensorDataset: " << empty.status();
  ThreadGroup group(2);
  auto model = Model::Build(Mlp(false));
  ASSERT_TRUE(model.ok());
  for (int r = 0; r < 2; ++r) {
    auto got = EvaluateSharded(model->get(), **empty, 4, group.member(r));
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(group.calls(), 0);
}

// In Trainer::Run every replica evaluates (its slice) at the same steps and
// gets the evaluation one process at the global batch gets.
TEST(ShardedEvalTest, ReplicasEvaluateLikeOneProcess) {
  for (int replicas : {2, 3}) {
    SCOPED_TRACE(testing::Message() << replicas << " replicas");
    Options o;
    o.test_samples = 47;
    Options single = o;
    single.batch = o.batch * replicas;
    const Result one = Train(1, single);
    const Result many = Train(replicas, o);
    ASSERT_TRUE(one.status[0].ok()) << one.status[0];
    ASSERT_EQ(one.evals[0].size(), 3u);  // One per epoch.
    for (int r = 0; r < replicas; ++r) {
      ASSERT_TRUE(many.status[r].ok()) << many.status[r];
      ASSERT_EQ(many.evals[r].size(), one.evals[0].size()) << "rank " << r;
      for (size_t i = 0; i < one.evals[0].size(); ++i) {
        const EvalResult& a = one.evals[0][i];
        const EvalResult& b = many.evals[r][i];
        EXPECT_EQ(b.samples, 47);
        EXPECT_LE(RelDiff(a.loss, b.loss), 1e-5)
            << "rank " << r << " eval " << i << ": " << a.loss << " vs "
            << b.loss;
        EXPECT_NEAR(a.accuracy, b.accuracy, 1e-6)
            << "rank " << r << " eval " << i;
      }
    }
  }
}

TEST(DataParallelTest, LocalCollectiveIsOneRank) {
  LocalCollective local;
  EXPECT_EQ(local.rank(), 0);
  EXPECT_EQ(local.size(), 1);
  std::vector<float> v = {1, 2};
  const absl::Span<float> s(v);
  EXPECT_TRUE(local.AllreduceAverage(absl::MakeConstSpan(&s, 1)).ok());
  EXPECT_EQ(v[1], 2);
}

}  // namespace
}  // namespace nnlab

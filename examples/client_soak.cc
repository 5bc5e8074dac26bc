// A load generator for nnlabd: fills the job slots and the queue in
// bursts that must hit the queue limit, follows jobs with many watchers,
// replays finished jobs' histories, and measures Infer latency at several
// client concurrencies while sampling the server's RSS and thread count.
// tests/server/soak.sh starts a server and runs it.
//
// Usage: client_soak --server=HOST:PORT --pid=PID [--seconds=300]
//          [--watchers=50] [--levels=1,8,32] [--max_jobs=2] [--queue=4]
// --max_jobs and --queue must match the server's --max_jobs and
// --max_queued_jobs (they size the StartJob bursts).
// PID is the server's process id (for /proc sampling; 0: no sampling).
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/client.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = nnlab::v1;

struct Flags {
  std::string server = "127.0.0.1:50051";
  int pid = 0;
  int seconds = 300;
  int watchers = 50;
  std::vector<int> levels = {1, 8, 32};
  int max_jobs = 2;  // The server's --max_jobs and --max_queued_jobs.
  int queue = 4;
};

Flags Parse(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::string p = absl::StrCat("--", name, "=");
      return absl::StartsWith(a, p) ? argv[i] + p.size() : nullptr;
    };
    if (const char* v = value("server")) f.server = v;
    if (const char* v = value("pid")) f.pid = std::atoi(v);
    if (const char* v = value("seconds")) f.seconds = std::atoi(v);
    if (const char* v = value("watchers")) f.watchers = std::atoi(v);
    if (const char* v = value("max_jobs")) f.max_jobs = std::atoi(v);
    if (const char* v = value("queue")) f.queue = std::atoi(v);
    if (const char* v = value("levels")) {
      f.levels.clear();
      for (absl::string_view s : absl::StrSplit(v, ',')) {
        int n = 0;
        if (absl::SimpleAtoi(s, &n) && n > 0) f.levels.push_back(n);
      }
    }
  }
  return f;
}

int Threads(int pid) {
  DIR* d = opendir(absl::StrCat("/proc/", pid, "/task").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (struct dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

int64_t RssKib(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:"))
      return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::unique_ptr<nnlab::Client> Connect(const Flags& f) {
  nnlab::ClientOptions o;
  o.server = f.server;
  o.deadline = absl::Seconds(30);
  auto c = nnlab::Client::Create(o);
  if (!c.ok()) {
    std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*c);
}

v1::ModelSpec Mlp(uint64_t seed) {
  v1::ModelSpec s;
  s.set_name("soak");
  s.add_input_shape(2);
  s.add_layers()->mutable_dense()->set_units(64);
  s.add_layers()->mutable_relu();
  s.add_layers()->mutable_dense()->set_units(2);
  s.set_loss(v1::LOSS_SOFTMAX_CROSS_ENTROPY);
  s.set_init(v1::INIT_HE);
  s.set_seed(seed);
  return s;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = Parse(argc, argv);
  auto admin = Connect(f);

  // Two Gaussian blobs, 20,000 train + 2,000 test samples.
  const int n = 22000;
  std::mt19937 gen(7);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  std::vector<float> x, y;
  for (int i = 0; i < n; ++i) {
    const float m = i % 2 == 0 ? -1.0f : 1.0f;
    x.push_back(m + noise(gen));
    x.push_back(m + noise(gen));
    y.push_back(float(i % 2));
  }
  std::string payload(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  payload.append(reinterpret_cast<const char*>(y.data()), y.size() * 4);
  v1::DatasetHeader h;
  h.set_name("soak-blobs");
  h.add_sample_shape(2);
  h.set_num_classes(2);
  h.set_num_samples(n);
  h.set_test_samples(2000);
  auto ds = admin->UploadDataset(h, payload);
  if (!ds.ok()) {
    std::fprintf(stderr, "upload: %s\n", ds.status().ToString().c_str());
    return 1;
  }
  v1::CreateModelRequest creq;
  creq.set_model_id("soak-infer");
  *creq.mutable_spec() = Mlp(1);
  if (auto m = admin->CreateModel(creq); !m.ok()) {
    std::fprintf(stderr, "create: %s\n", m.status().ToString().c_str());
    return 1;
  }

  std::atomic<bool> stop{false}, stop_sampling{false};
  std::atomic<int> accepted{0}, rejected{0}, completed{0}, failed{0};
  // Server samples: baseline before any load.
  std::mutex sample_mu;
  const int base_threads = f.pid ? Threads(f.pid) : -1;
  const int64_t base_rss = f.pid ? RssKib(f.pid) : -1;
  int peak_threads = base_threads;
  int64_t peak_rss = base_rss;
  std::vector<std::pair<double, double>> growth;  // (jobs completed, RSS)
  std::thread sampler([&] {
    while (!stop_sampling.load() && f.pid) {
      const int t = Threads(f.pid);
      const int64_t r = RssKib(f.pid);
      {
        std::lock_guard<std::mutex> l(sample_mu);
        peak_threads = std::max(peak_threads, t);
        peak_rss = std::max(peak_rss, r);
        if (completed.load() > 0) growth.emplace_back(completed.load(), r);
      }
      std::printf("sample: threads %d rss %lld KiB, jobs completed %d\n", t,
                  static_cast<long long>(r), completed.load());
      std::fflush(stdout);
      std::this_thread::sleep_for(std::chrono::seconds(3));
    }
  });

  // Jobs, in rounds: the models are created first, then max_jobs +
  // max_queued + 4 StartJob calls go out back to back, faster than the
  // workers can take jobs off the queue, so the queue limit must refuse
  // some (RESOURCE_EXHAUSTED). The round's accepted jobs run to completion
  // before the next burst. Once the run time is up no new round starts and
  // the jobs still running are waited for, not cancelled: every accepted
  // job has to complete.
  std::atomic<int> other_errors{0}, rounds{0}, rounds_refused{0};
  std::atomic<bool> submitter_done{false};
  std::mutex jobs_mu;
  std::vector<std::string> live_jobs, finished_jobs;
  std::thread submitter([&] {
    auto c = Connect(f);
    const int burst = f.max_jobs + f.queue + 4;
    int next = 0;
    const auto give_up = Clock::now() + std::chrono::seconds(f.seconds) +
                         std::chrono::minutes(10);
    while (!stop.load()) {
      std::vector<std::string> models;
      for (int k = 0; k < burst; ++k) {
        const std::string model = absl::StrCat("soak-job-", next++);
        v1::CreateModelRequest r;
        r.set_model_id(model);
        *r.mutable_spec() = Mlp(next);
        if (c->CreateModel(r).ok()) {
          models.push_back(model);
        } else {
          ++other_errors;
        }
      }
      // All calls at once, one thread each: a job can finish in about a
      // second on a fast machine, so sequential calls could let the
      // workers drain the queue between them.
      std::vector<absl::StatusOr<v1::Job>> results(
          models.size(), absl::UnknownError("not sent"));
      {
        std::vector<std::thread> calls;
        std::atomic<int> ready{0};
        for (size_t k = 0; k < models.size(); ++k) {
          calls.emplace_back([&, k] {
            v1::JobSpec spec;
            spec.set_model_id(models[k]);
            spec.set_dataset(ds->dataset_id());
            spec.mutable_optimizer()->set_kind(v1::OPTIMIZER_ADAM);
            spec.mutable_optimizer()->set_learning_rate(0.003f);
            spec.set_batch_size(32);
            spec.set_epochs(10);  // 625 steps per epoch.
            spec.set_max_steps(3000);
            spec.set_checkpoint_every_steps(500);
            spec.set_stats_every(50);
            ++ready;
            while (ready.load() < static_cast<int>(models.size())) {
              std::this_thread::yield();
            }
            results[k] = c->StartJob(spec);
          });
        }
        for (auto& t : calls) t.join();
      }
      std::vector<std::pair<std::string, std::string>> mine;  // job, model
      int refused = 0;
      for (size_t k = 0; k < models.size(); ++k) {
        const absl::StatusOr<v1::Job>& job = results[k];
        if (job.ok()) {
          ++accepted;
          mine.emplace_back(job->job_id(), models[k]);
        } else if (absl::IsResourceExhausted(job.status())) {
          ++rejected;
          ++refused;
          c->DeleteModel(models[k]).IgnoreError();
        } else {
          ++other_errors;
          std::fprintf(stderr, "StartJob: %s\n",
                       job.status().ToString().c_str());
          c->DeleteModel(models[k]).IgnoreError();
        }
      }
      ++rounds;
      rounds_refused += refused > 0;
      std::printf("round %d: %zu accepted, %d refused\n", rounds.load(),
                  mine.size(), refused);
      std::fflush(stdout);
      {
        std::lock_guard<std::mutex> l(jobs_mu);
        for (const auto& jm : mine) live_jobs.push_back(jm.first);
      }
      // Reap the round's jobs and their models as they finish.
      while (!mine.empty() && Clock::now() < give_up) {
        for (auto it = mine.begin(); it != mine.end();) {
          auto j = c->GetJob(it->first);
          const bool ended = j.ok() && (j->state() == v1::JOB_STATE_COMPLETED ||
                                        j->state() == v1::JOB_STATE_FAILED ||
                                        j->state() == v1::JOB_STATE_CANCELLED);
          if (!ended) {
            ++it;
            continue;
          }
          if (j->state() == v1::JOB_STATE_COMPLETED) {
            ++completed;
          } else {
            ++failed;
            std::fprintf(stderr, "job %s ended %s: %s\n", it->first.c_str(),
                         v1::JobState_Name(j->state()).c_str(),
                         j->failure_reason().c_str());
          }
          c->DeleteModel(it->second).IgnoreError();
          {
            std::lock_guard<std::mutex> l(jobs_mu);
            live_jobs.erase(
                std::remove(live_jobs.begin(), live_jobs.end(), it->first),
                live_jobs.end());
            if (j->state() == v1::JOB_STATE_COMPLETED) {
              finished_jobs.push_back(it->first);
            }
          }
          it = mine.erase(it);
        }
        if (!mine.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
      }
      for (auto& [job, model] : mine) {
        std::fprintf(stderr, "job %s did not finish in time\n", job.c_str());
        c->CancelJob(job).IgnoreError();
      }
    }
    submitter_done = true;
  });

  // Watchers: each follows a live job to its end, then picks another.
  // Every fifth one instead replays the whole history of a finished job
  // (served from the job's event log once it has left memory) and checks it
  // is complete: sequences 0, 1, 2, ... with nothing dropped, ending with
  // COMPLETED.
  std::atomic<int64_t> events{0}, replays{0}, bad_replays{0};
  std::atomic<int> watch_errors{0};
  std::vector<std::thread> watchers;
  for (int w = 0; w < f.watchers; ++w) {
    watchers.emplace_back([&, w] {
      auto c = Connect(f);
      std::mt19937 pick(w);
      const bool replayer = w % 5 == 4;
      while (!stop.load()) {
        std::string job;
        {
          std::lock_guard<std::mutex> l(jobs_mu);
          const auto& from = replayer ? finished_jobs : live_jobs;
          if (!from.empty()) job = from[pick() % from.size()];
        }
        if (job.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          continue;
        }
        v1::StreamMetricsRequest req;
        req.set_job_id(job);
        req.set_omit_layer_stats(w % 2 == 0);
        int64_t expect = 0;
        bool gap = false;
        v1::MetricEvent last;
        bool interrupted = false;
        absl::Status s = c->WatchMetrics(req, [&](const v1::MetricEvent& e) {
          ++events;
          gap |= e.sequence() != expect || e.dropped_events() != 0;
          expect = e.sequence() + 1;
          last = e;
          interrupted = stop.load();
          return !interrupted;
        });
        if (!s.ok()) ++watch_errors;
        if (replayer && s.ok() && !interrupted) {
          ++replays;
          if (gap || last.phase() != v1::PHASE_STATE ||
              last.job_state() != v1::JOB_STATE_COMPLETED) {
            ++bad_replays;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    });
  }

  // Inference: the levels share the run time in turn.
  struct Level {
    int clients;
    int64_t calls = 0, errors = 0;
    std::vector<double> ms;
    double seconds = 0;
  };
  std::vector<Level> levels;
  const double per_level = double(f.seconds) / double(f.levels.size());
  for (int clients : f.levels) {
    Level lv;
    lv.clients = clients;
    std::mutex mu;
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration<double>(per_level);
    std::vector<std::thread> ts;
    for (int k = 0; k < clients; ++k) {
      ts.emplace_back([&, k] {
        auto c = Connect(f);
        std::vector<double> mine;
        int64_t errs = 0;
        v1::InferRequest req;
        req.set_model_id("soak-infer");
        req.mutable_inputs()->add_shape(1);
        req.mutable_inputs()->add_shape(2);
        req.mutable_inputs()->add_data(0.1f * float(k));
        req.mutable_inputs()->add_data(-0.3f);
        while (Clock::now() < end) {
          const auto a = Clock::now();
          auto r = c->Infer(req);
          const double ms =
              std::chrono::duration<double, std::milli>(Clock::now() - a)
                  .count();
          if (r.ok()) {
            mine.push_back(ms);
          } else {
            ++errs;
          }
        }
        std::lock_guard<std::mutex> l(mu);
        lv.ms.insert(lv.ms.end(), mine.begin(), mine.end());
        lv.errors += errs;
      });
    }
    for (auto& t : ts) t.join();
    lv.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    lv.calls = int64_t(lv.ms.size());
    std::printf("infer level %d: %lld calls\n", clients,
                static_cast<long long>(lv.calls));
    levels.push_back(std::move(lv));
  }

  stop = true;
  submitter.join();
  for (auto& t : watchers) t.join();
  stop_sampling = true;
  // Let the server drop what the load held.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  sampler.join();
  const int end_threads = f.pid ? Threads(f.pid) : -1;
  const int64_t end_rss = f.pid ? RssKib(f.pid) : -1;

  std::printf("\n== soak summary (%d s) ==\n", f.seconds);
  std::printf(
      "jobs: accepted %d, completed %d, failed %d, rejected "
      "(RESOURCE_EXHAUSTED) %d, other errors %d\n",
      accepted.load(), completed.load(), failed.load(), rejected.load(),
      other_errors.load());
  std::printf("watchers: %d, events received %lld, stream errors %d\n",
              f.watchers, static_cast<long long>(events.load()),
              watch_errors.load());
  std::printf("replays of finished jobs: %lld, incomplete %lld\n",
              static_cast<long long>(replays.load()),
              static_cast<long long>(bad_replays.load()));
  std::printf("StartJob bursts of %d: %d, refused in %d\n",
              f.max_jobs + f.queue + 4, rounds.load(), rounds_refused.load());
  std::printf("%-10s %10s %10s %10s %10s %8s\n", "clients", "calls", "calls/s",
              "p50 ms", "p99 ms", "errors");
  for (const Level& lv : levels) {
    std::printf("%-10d %10lld %10.0f %10.3f %10.3f %8lld\n", lv.clients,
                static_cast<long long>(lv.calls), double(lv.calls) / lv.seconds,
                Percentile(lv.ms, 0.5), Percentile(lv.ms, 0.99),
                static_cast<long long>(lv.errors));
  }
  std::printf("RSS KiB: baseline %lld, peak %lld, end %lld\n",
              static_cast<long long>(base_rss),
              static_cast<long long>(peak_rss),
              static_cast<long long>(end_rss));
  std::printf("threads: baseline %d, peak %d, end %d\n", base_threads,
              peak_threads, end_threads);
  // RSS growth per completed job: the least-squares slope of RSS against
  // the number of completed jobs, over the samples after the first one
  // completed (start-up allocations excluded).
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : growth) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double m = double(growth.size());
  const double den = m * sxx - sx * sx;
  if (growth.size() >= 3 && den > 0) {
    std::printf(
        "RSS growth per completed job: %.1f KiB (slope over %zu "
        "samples); (end - baseline) / completed: %.1f KiB\n",
        (m * sxy - sx * sy) / den, growth.size(),
        completed.load() > 0 ? double(end_rss - base_rss) / completed.load()
                             : 0.0);
  }
  const bool ok = failed.load() == 0 && other_errors.load() == 0 &&
                  completed.load() == accepted.load() &&
                  rounds_refused.load() == rounds.load() &&
                  bad_replays.load() == 0;
  std::printf("%s\n", ok ? "soak: OK"
                         : "soak: FAILED (see the job, replay and round "
                           "counts above)");
  return ok ? 0 : 1;
}

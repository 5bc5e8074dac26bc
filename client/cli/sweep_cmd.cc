// nnlab sweep --spec FILE [--watch], nnlab sweep list|get|cancel|pause|resume.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/cli/common.h"
#include "client/cli/spec.h"
#include "grpcpp/grpcpp.h"
#include "nnlab/v1/sweep.grpc.pb.h"

namespace nnlab::cli {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

// One SweepService call with the client's token and deadline.
template <typename Req, typename Resp>
absl::StatusOr<Resp> Call(Client& c,
                          grpc::Status (v1::SweepService::Stub::*rpc)(
                              grpc::ClientContext*, const Req&, Resp*),
                          const Req& req) {
  auto stub = v1::SweepService::NewStub(c.channel());
  grpc::ClientContext ctx;
  c.PrepareContext(&ctx, /*deadline=*/true);
  Resp resp;
  absl::Status s = FromGrpc((stub.get()->*rpc)(&ctx, req, &resp));
  if (!s.ok()) return s;
  return resp;
}

std::string ShortState(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_QUEUED:
      return "queued";
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_PAUSED:
      return "paused";
    case v1::JOB_STATE_COMPLETED:
      return "completed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    case v1::JOB_STATE_FAILED:
      return "failed";
    default:
      return "pending";
  }
}

std::string SweepStateName(v1::SweepState s) {
  switch (s) {
    case v1::SWEEP_STATE_RUNNING:
      return "running";
    case v1::SWEEP_STATE_PAUSED:
      return "paused";
    case v1::SWEEP_STATE_COMPLETED:
      return "completed";
    case v1::SWEEP_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

// A trial's settings, shortest form: "lr=0.1 seed=2" from the last path
// component of each field.
std::string Settings(const v1::SweepTrial& t) {
  std::vector<std::string> parts;
  for (const v1::SweepParam& p : t.params()) {
    const size_t dot = p.field().rfind('.');
    std::string name =
        dot == std::string::npos ? p.field() : p.field().substr(dot + 1);
    std::string value = p.value();
    if (p.field() == "model") {
      // A whole model: its name says which.
      const size_t at = value.find("\nname: \"");
      const size_t start = at == std::string::npos ? 0 : at + 8;
      const size_t end = value.find('"', start);
      value = at == std::string::npos || end == std::string::npos
                  ? "(model)"
                  : value.substr(start, end - start);
      name = "model";
    }
    std::replace(value.begin(), value.end(), '\n', ' ');
    if (value.size() > 60) value = value.substr(0, 57) + "...";
    parts.push_back(name + "=" + value);
  }
  return absl::StrJoin(parts, " ");
}

}  // namespace

// The ranked table of a sweep: rank, trial, state, best metric (step),
// steps, seconds, settings.
std::string SweepTable(const v1::Sweep& s) {
  const bool loss = s.spec().metric() == v1::SWEEP_METRIC_TEST_LOSS;
  std::string out =
      absl::StrFormat("sweep %s  %s  %d trials  (at most %d at once)\n",
                      s.sweep_id(), SweepStateName(s.state()), s.trials_size(),
                      std::max(1, s.spec().max_concurrent()));
  out += absl::StrFormat("%4s %5s %-10s %10s %7s %15s %8s  %s\n", "rank",
                         "trial", "state", loss ? "test_loss" : "test_acc",
                         "@step", "steps", "seconds", "settings");
  int rank = 0;
  for (int i : s.ranking()) {
    const v1::SweepTrial& t = s.trials(i);
    ++rank;
    std::string state = ShortState(t.state());
    if (t.stopped_early()) state = "stopped";
    out += absl::StrFormat(
        "%4d %5d %-10s %10s %7s %15s %8.1f  %s\n", rank, t.index(), state,
        t.has_metric() ? absl::StrFormat("%.4f", t.best_metric()) : "-",
        t.has_metric() ? absl::StrCat(t.best_step()) : "-",
        absl::StrCat(t.step(), "/", t.total_steps()), t.seconds(), Settings(t));
  }
  return out;
}

namespace {

// Replaces "@path" axis values by the file's contents (path relative to the
// spec file's folder unless absolute).
absl::Status ExpandFileValues(const std::string& spec_path,
                              v1::SweepSpec* spec) {
  const size_t slash = spec_path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "" : spec_path.substr(0, slash + 1);
  for (v1::SweepAxis& axis : *spec->mutable_axes()) {
    for (std::string& v : *axis.mutable_values()) {
      if (v.empty() || v[0] != '@') continue;
      std::string path = v.substr(1);
      if (path.empty() || path[0] != '/') path = dir + path;
      auto text = ReadFileToString(path);
      if (!text.ok()) return text.status();
      v = *text;
    }
  }
  return absl::OkStatus();
}

// "sweep ID running: 3/21 ended, 2 running, best 0.9120 (trial 4)".
std::string ProgressLine(const v1::Sweep& s) {
  int ended = 0, running = 0;
  for (const v1::SweepTrial& t : s.trials()) {
    ended += t.state() == v1::JOB_STATE_COMPLETED ||
             t.state() == v1::JOB_STATE_CANCELLED ||
             t.state() == v1::JOB_STATE_FAILED;
    running += t.state() == v1::JOB_STATE_RUNNING;
  }
  std::string out = absl::StrFormat("sweep %s %s: %d/%d ended, %d running",
                                    s.sweep_id(), SweepStateName(s.state()),
                                    ended, s.trials_size(), running);
  if (s.ranking_size() > 0 && s.trials(s.ranking(0)).has_metric()) {
    const v1::SweepTrial& best = s.trials(s.ranking(0));
    out += absl::StrFormat(", best %.4f (trial %d)", best.best_metric(),
                           best.index());
  }
  return out;
}

struct StartFlags {
  std::string spec, model;
  bool watch = false;
};

int Watch(Client& c, const Globals& g, const std::string& id) {
  v1::GetSweepRequest req;
  req.set_sweep_id(id);
  const bool tty = isatty(STDOUT_FILENO) != 0;
  size_t lines = 0;
  std::string last_line;
  for (;;) {
    auto s = Call(c, &v1::SweepService::Stub::GetSweep, req);
    if (!s.ok()) return Fail(s.status());
    const bool done = s->state() == v1::SWEEP_STATE_COMPLETED ||
                      s->state() == v1::SWEEP_STATE_CANCELLED;
    if (g.json) {
      if (done) PrintJson(*s);
    } else if (tty) {
      const std::string table = SweepTable(*s);
      if (lines > 0) std::printf("\x1b[%zuA\x1b[J", lines);
      std::printf("%s", table.c_str());
      lines = static_cast<size_t>(std::count(table.begin(), table.end(), '\n'));
      std::fflush(stdout);
    } else if (done) {
      std::printf("%s", SweepTable(*s).c_str());
    } else {
      // Plain output (logs, pipes): one progress line when it changes, at
      // most one a second; the table once the sweep ends.
      const std::string line = ProgressLine(*s);
      if (line != last_line) std::printf("%s\n", line.c_str());
      last_line = line;
      std::fflush(stdout);
    }
    if (done) {
      for (const v1::SweepTrial& t : s->trials()) {
        if (t.state() == v1::JOB_STATE_FAILED) return kExitJobFailed;
      }
      return s->state() == v1::SWEEP_STATE_COMPLETED ? kExitOk : kExitJobFailed;
    }
    absl::SleepFor(absl::Seconds(1));
  }
}

int RunStart(const Globals& g, const StartFlags& f) {
  auto text = ReadFileToString(f.spec);
  if (!text.ok()) return Fail(text.status());
  v1::StartSweepRequest req;
  // FILE:LINE:COLUMN on one line (TextFormat alone logs to stderr).
  absl::Status parsed = ParseTextProto(*text, f.spec, req.mutable_spec());
  if (!parsed.ok()) return Fail(parsed);
  if (!f.model.empty()) {
    v1::CreateModelRequest m;
    absl::Status s = LoadModelDefinition(f.model, &m);
    if (!s.ok()) return Fail(s);
    if (!m.has_spec()) return Usage(f.model + ": sweeps need a ModelSpec");
    *req.mutable_spec()->mutable_model() = m.spec();
  }
  absl::Status s = ExpandFileValues(f.spec, req.mutable_spec());
  if (!s.ok()) return Fail(s);
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto sweep = Call(**client, &v1::SweepService::Stub::StartSweep, req);
  if (!sweep.ok()) return Fail(sweep.status());
  if (!f.watch) {
    if (g.json) {
      PrintJson(*sweep);
    } else {
      std::printf("%s", SweepTable(*sweep).c_str());
    }
    return kExitOk;
  }
  return Watch(**client, g, sweep->sweep_id());
}

}  // namespace

void AddSweepCommands(CLI::App& app, Cli& cli) {
  Globals& g = cli.globals;
  auto f = std::make_shared<StartFlags>();
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "Start a sweep (--spec FILE), or list, get, cancel, pause, resume one");
  sweep->require_subcommand(0, 1);
  sweep->add_option("--spec", f->spec, "Text-format SweepSpec");
  sweep->add_option("--model", f->model,
                    "Model file to use as the sweep's base model");
  sweep->add_flag("--watch", f->watch,
                  "Show the ranked table live until the sweep ends");
  sweep->callback([&cli, &g, f, sweep] {
    if (!sweep->get_subcommands().empty()) return;
    cli.run = [&g, f] {
      if (f->spec.empty()) return Usage("sweep: --spec FILE is required");
      return RunStart(g, *f);
    };
  });
  CLI::App* list = sweep->add_subcommand("list", "List sweeps");
  list->callback([&cli, &g] {
    cli.run = [&g] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto r = Call(**client, &v1::SweepService::Stub::ListSweeps,
                    v1::ListSweepsRequest());
      if (!r.ok()) return Fail(r.status());
      for (const v1::Sweep& s : r->sweeps()) {
        if (g.json) {
          PrintJson(s);
          continue;
        }
        int ended = 0;
        for (const auto& t : s.trials()) {
          ended += t.state() == v1::JOB_STATE_COMPLETED ||
                   t.state() == v1::JOB_STATE_CANCELLED ||
                   t.state() == v1::JOB_STATE_FAILED;
        }
        std::printf("%s  %-10s %d/%d trials ended  %s\n", s.sweep_id().c_str(),
                    SweepStateName(s.state()).c_str(), ended, s.trials_size(),
                    s.spec().name().c_str());
      }
      return kExitOk;
    };
  });
  auto id = std::make_shared<std::string>();
  auto add = [&cli, &g, sweep, id](const std::string& name,
                                   const std::string& help, auto rpc,
                                   auto make_req, bool watchable) {
    CLI::App* cmd = sweep->add_subcommand(name, help);
    cmd->add_option("SWEEP", *id, "Sweep id")->required();
    auto watch = std::make_shared<bool>(false);
    if (watchable) cmd->add_flag("--watch", *watch, "Follow it live");
    cmd->callback([&cli, &g, id, rpc, make_req, watch] {
      cli.run = [&g, id, rpc, make_req, watch] {
        auto client = Connect(g);
        if (!client.ok()) return Fail(client.status());
        if (*watch) return Watch(**client, g, *id);
        return PrintOr<v1::Sweep>(Call(**client, rpc, make_req(*id)), g,
                                  SweepTable);
      };
    });
  };
  add(
      "get", "Show a sweep's ranked trials", &v1::SweepService::Stub::GetSweep,
      [](const std::string& i) {
        v1::GetSweepRequest r;
        r.set_sweep_id(i);
        return r;
      },
      true);
  add(
      "cancel", "Cancel every trial of a sweep",
      &v1::SweepService::Stub::CancelSweep,
      [](const std::string& i) {
        v1::CancelSweepRequest r;
        r.set_sweep_id(i);
        return r;
      },
      false);
  add(
      "pause", "Pause every running trial; start no new one",
      &v1::SweepService::Stub::PauseSweep,
      [](const std::string& i) {
        v1::PauseSweepRequest r;
        r.set_sweep_id(i);
        return r;
      },
      false);
  add(
      "resume", "Resume a paused sweep", &v1::SweepService::Stub::ResumeSweep,
      [](const std::string& i) {
        v1::ResumeSweepRequest r;
        r.set_sweep_id(i);
        return r;
      },
      false);
}

}  // namespace nnlab::cli

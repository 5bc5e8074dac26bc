// nnlab infer: a model on local IDX files (--images/--labels, through
// Infer: a line per sample, then the accuracy and loss), or on a data set
// the server holds (--dataset, through Evaluate: the accuracy and loss
// only, computed by the server as a job evaluates).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/common.h"
#include "client/cli/data.h"

namespace nnlab::cli {
namespace {

struct InferFlags {
  std::string model, dataset, images, labels;
  int64_t limit = 0, offset = 0, batch = 256;
  int top_k = 0;
};

// Local IDX files: Infer in batches of --batch; a line per sample, then the
// accuracy and the softmax cross-entropy over the labelled samples.
int RunInferLocal(const Globals& g, const InferFlags& f) {
  absl::StatusOr<LabeledImages> data = LoadIdx(f.images, f.labels);
  if (!data.ok()) return Fail(data.status());
  const bool have_labels = !f.labels.empty();
  int64_t end = data->count;
  if (f.limit > 0) end = std::min(end, f.offset + f.limit);
  if (f.offset >= end) return Usage("no samples selected (--offset/--limit)");

  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto model = (*client)->GetModel(f.model);
  if (!model.ok()) return Fail(model.status());
  std::vector<int64_t> shape(model->input_shape().begin(),
                             model->input_shape().end());
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  if (size != data->sample_size()) {
    return Usage(absl::StrCat(
        "model ", f.model, " takes inputs ", ShapeString(model->input_shape()),
        ", the data has ", data->sample_size(), " values per sample"));
  }

  int64_t correct = 0, counted = 0;
  double loss_sum = 0;
  int64_t weights_step = 0;
  for (int64_t b = f.offset; b < end; b += f.batch) {
    const int64_t e = std::min(end, b + f.batch);
    v1::InferRequest req;
    req.set_model_id(f.model);
    *req.mutable_inputs() = data->Inputs(b, e, shape);
    req.set_top_k(f.top_k);
    auto resp = (*client)->Infer(req);
    if (!resp.ok()) return Fail(resp.status());
    weights_step = resp->weights_step();
    if (g.json) {
      PrintJson(*resp);
    }
    if (resp->predictions_size() != e - b) {
      if (!g.json) {
        std::printf("outputs %s (not a classifier: no predictions)\n",
                    ShapeString(resp->outputs().shape()).c_str());
      }
      continue;
    }
    // Softmax cross-entropy from the logits, for the loss over the samples.
    const v1::Tensor& out = resp->outputs();
    const int64_t classes = out.shape_size() == 2 ? out.shape(1) : 0;
    const bool logits = classes > 0 && out.data_size() == (e - b) * classes;
    for (int64_t i = b; i < e; ++i) {
      const int64_t pred = resp->predictions(static_cast<int>(i - b));
      const int label = data->labels[i];
      if (have_labels) {
        correct += pred == label;
        ++counted;
        if (logits && label < classes) {
          const float* row = out.data().data() + (i - b) * classes;
          double mx = row[0];
          for (int64_t c = 1; c < classes; ++c)
            mx = std::max<double>(mx, row[c]);
          double z = 0;
          for (int64_t c = 0; c < classes; ++c) z += std::exp(row[c] - mx);
          loss_sum += std::log(z) + mx - row[label];
        }
      }
      if (!g.json) {
        std::string line = absl::StrFormat("sample %d  predicted %d", i, pred);
        if (have_labels) {
          absl::StrAppendFormat(&line, "  label %d%s", label,
                                pred == label ? "" : "  (wrong)");
        }
        if (f.top_k > 0 && i - b < resp->top_k_size()) {
          const v1::TopK& t = resp->top_k(static_cast<int>(i - b));
          std::vector<std::string> parts;
          for (int k = 0; k < t.classes_size(); ++k) {
            parts.push_back(absl::StrFormat(
                "%d:%.3f", t.classes(k),
                k < t.probabilities_size() ? t.probabilities(k) : 0.f));
          }
          absl::StrAppend(&line, "  top ", absl::StrJoin(parts, " "));
        }
        std::printf("%s\n", line.c_str());
      }
    }
  }
  if (have_labels && counted > 0) {
    v1::EvalResult r;
    r.set_accuracy(static_cast<double>(correct) / static_cast<double>(counted));
    r.set_loss(loss_sum / static_cast<double>(counted));
    r.set_step(weights_step);
    if (g.json) {
      PrintJson(r);
    } else {
      std::printf(
          "accuracy %.4f (%lld/%lld), loss %.4f, weights at step %lld\n",
          r.accuracy(), static_cast<long long>(correct),
          static_cast<long long>(counted), r.loss(),
          static_cast<long long>(weights_step));
    }
  }
  return kExitOk;
}

// --dataset NAME, NAME:train or NAME:test (the split a job with this data
// set uses; NAME alone is the training split).
int RunEvaluate(const Globals& g, const InferFlags& f) {
  std::vector<std::string> parts = absl::StrSplit(f.dataset, ':');
  std::string split = "train";
  if (parts.size() == 2 && (parts[1] == "test" || parts[1] == "train")) {
    split = parts[1];
  } else if (parts.size() != 1) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--dataset ", f.dataset, ": expected NAME, NAME:train or NAME:test")));
  }
  v1::EvaluateRequest req;
  req.set_model_id(f.model);
  req.set_dataset(parts[0]);
  req.set_split(split);
  req.set_offset(f.offset);
  req.set_limit(f.limit);
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  auto r = (*client)->Evaluate(req);
  if (!r.ok()) return Fail(r.status());
  // The same EvalResult (and line) as the local path's summary.
  v1::EvalResult e;
  e.set_accuracy(r->is_classifier() ? r->accuracy() : -1);
  e.set_loss(r->loss());
  e.set_step(r->weights_step());
  if (g.json) {
    PrintJson(e);
  } else if (r->is_classifier()) {
    const long long correct =
        std::llround(r->accuracy() * static_cast<double>(r->samples()));
    std::printf("accuracy %.4f (%lld/%lld), loss %.4f, weights at step %lld\n",
                r->accuracy(), correct, static_cast<long long>(r->samples()),
                r->loss(), static_cast<long long>(r->weights_step()));
  } else {
    std::printf("loss %.4f over %lld samples, weights at step %lld\n",
                r->loss(), static_cast<long long>(r->samples()),
                static_cast<long long>(r->weights_step()));
  }
  return kExitOk;
}

}  // namespace

void AddInferCommand(CLI::App& app, Cli& cli) {
  auto inf = std::make_shared<InferFlags>();
  CLI::App* infer = app.add_subcommand(
      "infer",
      "Run a model on local IDX files (predictions and accuracy) or on a "
      "data set on the server (accuracy and loss)");
  infer->add_option("--model", inf->model, "Model id")->required();
  CLI::Option* ds = infer->add_option(
      "--dataset", inf->dataset,
      "Data set on the server (built-in or uploaded), NAME[:train|:test] "
      "(default: train); prints only the accuracy and loss");
  CLI::Option* im =
      infer->add_option("--images", inf->images, "IDX image file");
  infer->add_option("--labels", inf->labels, "IDX label file (with --images)")
      ->needs(im);
  ds->excludes(im);
  infer->add_option("--limit", inf->limit, "At most N samples (0: all)");
  infer->add_option("--offset", inf->offset, "Skip the first N samples");
  infer->add_option("--top_k", inf->top_k,
                    "Also show the k most probable classes (--images)");
  infer->add_option("--batch", inf->batch, "Samples per request (--images)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  infer->callback([&cli, inf] {
    cli.run = [&g = cli.globals, inf] {
      if (inf->dataset.empty() && inf->images.empty()) {
        return Usage("infer: give --dataset NAME[:test] or --images FILE");
      }
      if (!inf->images.empty() && inf->labels.empty()) {
        return Usage(
            "infer: --images needs --labels (IDX files come in pairs)");
      }
      if (!inf->dataset.empty()) {
        if (inf->top_k > 0) {
          return Usage(
              "infer: --top_k needs --images (--dataset prints only the "
              "accuracy and loss)");
        }
        return RunEvaluate(g, *inf);
      }
      return RunInferLocal(g, *inf);
    };
  });
}

}  // namespace nnlab::cli

// The C++ client in a few lines: create a model from a spec file, start a
// training job on MNIST, print its metric stream, and report the result.
//
// Usage: client_quickstart [SPEC_FILE] [SERVER]
//   SPEC_FILE  a ModelSpec in text format or JSON
//              (default: examples/mnist_mlp_100.textproto)
//   SERVER     HOST:PORT of nnlabd (default: $NNLAB_SERVER or
//              127.0.0.1:50051)
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "client/client.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace {

// A ModelSpec from a text-format or (*.json) JSON file. (The `nnlab` CLI's
// parser, client/cli/spec.h, also reads GanSpecs and points at errors.)
absl::Status LoadSpec(const std::string& path, nnlab::v1::ModelSpec* spec) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::stringstream text;
  text << in.rdbuf();
  const bool json =
      path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  if (json) {
    auto s = google::protobuf::util::JsonStringToMessage(text.str(), spec);
    if (!s.ok()) {
      return absl::InvalidArgumentError(path + ": " + s.ToString());
    }
  } else if (!google::protobuf::TextFormat::ParseFromString(text.str(), spec)) {
    return absl::InvalidArgumentError(path + ": not a text-format ModelSpec");
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string spec_path =
      argc > 1 ? argv[1] : "examples/mnist_mlp_100.textproto";
  nnlab::ClientOptions options;
  if (const char* env = std::getenv("NNLAB_SERVER")) options.server = env;
  if (argc > 2) options.server = argv[2];

  auto client = nnlab::Client::Create(options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }

  // 1. The model, from a spec file.
  nnlab::v1::CreateModelRequest create;
  absl::Status s = LoadSpec(spec_path, create.mutable_spec());
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 2;
  }
  auto model = (*client)->CreateModel(create);
  if (!model.ok()) {
    std::fprintf(stderr, "CreateModel: %s\n",
                 model.status().ToString().c_str());
    return 1;
  }
  std::printf("model %s: %lld parameters\n", model->model_id().c_str(),
              static_cast<long long>(model->parameter_count()));

  // 2. A job: one epoch of SGD on the MNIST digits.
  nnlab::v1::JobSpec spec;
  spec.set_model_id(model->model_id());
  spec.set_dataset("mnist");
  spec.mutable_optimizer()->set_kind(nnlab::v1::OPTIMIZER_SGD);
  spec.mutable_optimizer()->set_learning_rate(0.1f);
  spec.set_epochs(1);
  spec.set_batch_size(32);
  spec.set_stats_every(25);  // per-layer statistics every 25 steps
  auto job = (*client)->StartJob(spec);
  if (!job.ok()) {
    std::fprintf(stderr, "StartJob: %s\n", job.status().ToString().c_str());
    return 1;
  }
  std::printf("job %s: %lld steps\n", job->job_id().c_str(),
              static_cast<long long>(job->total_steps()));

  // 3. The stream: one callback per event until the job ends (the client
  // reconnects from the last step by itself if the stream breaks).
  nnlab::v1::StreamMetricsRequest watch;
  watch.set_job_id(job->job_id());
  s = (*client)->WatchMetrics(watch, [](const nnlab::v1::MetricEvent& e) {
    switch (e.phase()) {
      case nnlab::v1::PHASE_TRAIN:
        if (e.layers_size() == 0) break;  // print the steps with statistics
        std::printf("step %4lld  loss %.4f", static_cast<long long>(e.step()),
                    e.loss());
        for (const auto& layer : e.layers()) {
          std::printf("  %s %.2e", layer.name().c_str(),
                      layer.grad_bias_norm());
        }
        std::printf("\n");
        break;
      case nnlab::v1::PHASE_EVAL:
        std::printf("test accuracy %.4f at step %lld\n", e.accuracy(),
                    static_cast<long long>(e.step()));
        break;
      case nnlab::v1::PHASE_STATE:
        std::printf("job is %s\n",
                    nnlab::v1::JobState_Name(e.job_state()).c_str());
        break;
      default:
        break;
    }
    return true;  // keep watching
  });
  if (!s.ok()) {
    std::fprintf(stderr, "StreamMetrics: %s\n", s.ToString().c_str());
    return 1;
  }
  auto done = (*client)->GetJob(job->job_id());
  if (!done.ok()) {
    std::fprintf(stderr, "GetJob: %s\n", done.status().ToString().c_str());
    return 1;
  }
  return done->state() == nnlab::v1::JOB_STATE_COMPLETED ? 0 : 1;
}

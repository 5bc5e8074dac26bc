#include "tests/fuzz/fuzz_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "server/log.h"

namespace nnlab::fuzz {

void QuietLogs() {
  server::SetQuietLogs(true);
  google::protobuf::SetLogHandler(nullptr);
}

namespace {

std::vector<std::string>* TempDirs() {
  static auto* dirs = new std::vector<std::string>();
  return dirs;
}

void RemoveTempDirs() {
  for (const std::string& dir : *TempDirs()) {
    ClearDir(dir);
    rmdir(dir.c_str());
  }
}

}  // namespace

std::string MakeTempDir(const std::string& tag) {
  std::string base = "/dev/shm";
  if (access(base.c_str(), W_OK) != 0) {
    const char* tmp = getenv("TMPDIR");
    base = tmp != nullptr ? tmp : "/tmp";
  }
  std::string tmpl = absl::StrCat(base, "/nnlab-fuzz-", tag, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    perror("mkdtemp");
    abort();
  }
  if (TempDirs()->empty()) atexit(RemoveTempDirs);
  TempDirs()->push_back(tmpl);
  return tmpl;
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr ||
      fwrite(contents.data(), 1, contents.size(), f) != contents.size()) {
    perror(path.c_str());
    abort();
  }
  fclose(f);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    perror(path.c_str());
    abort();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void ClearDir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (unlink(path.c_str()) != 0) {
      ClearDir(path);
      rmdir(path.c_str());
    }
  }
}

const char kMlpSpec[] = R"pb(
  name: "mlp"
  input_shape: [ 4 ]
  layers { dense { units: 8 } }
  layers { relu {} }
  layers { dense { units: 3 } }
  loss: LOSS_SOFTMAX_CROSS_ENTROPY
  init: INIT_HE
  seed: 1
)pb";

const char kCnnSpec[] = R"pb(
  name: "cnn"
  input_shape: [ 1, 6, 6 ]
  layers { conv2d { filters: 2 kernel: 3 padding: 1 } }
  layers { batch_norm {} }
  layers { relu {} }
  layers { max_pool2d { kernel: 2 } }
  layers {
    residual {
      body { conv2d { filters: 2 kernel: 3 padding: 1 } }
      body { tanh {} }
    }
  }
  layers { avg_pool2d { kernel: 3 } }
  layers { flatten {} }
  layers { dropout { keep_prob: 0.5 } }
  layers { dense { units: 3 } }
  loss: LOSS_SOFTMAX_CROSS_ENTROPY
  seed: 2
)pb";

const char kRnnSpec[] = R"pb(
  name: "rnn"
  input_shape: [ 5, 3 ]
  layers { lstm { units: 4 return_sequences: true } }
  layers { rnn { units: 4 return_sequences: true bptt_window: 2 } }
  layers { time_dense { units: 3 } }
  loss: LOSS_MSE
  seed: 3
)pb";

const char kMnistSpec[] = R"pb(
  name: "mnist"
  input_shape: [ 784 ]
  layers { dense { units: 10 } }
  loss: LOSS_SOFTMAX_CROSS_ENTROPY
  seed: 4
)pb";

const char kGanSpec[] = R"pb(
  name: "gan"
  noise_dim: 2
  generator {
    layers { dense { units: 4 } }
    layers { leaky_relu { alpha: 0.2 } }
    layers { dense { units: 3 } }
  }
  discriminator {
    layers { dense { units: 4 } }
    layers { sigmoid {} }
    layers { dense { units: 1 } }
  }
  noise: NOISE_NORMAL
  seed: 5
)pb";

server::Limits FuzzLimits() {
  server::Limits limits;
  limits.max_params = 2'000'000;
  limits.max_tensor_elements = int64_t{1} << 22;
  return limits;
}

std::vector<std::string> ExampleSpecs(const std::string& source_dir) {
  std::vector<std::string> out;
  const std::string dir = absl::StrCat(source_dir, "/examples");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    // sweep_*.textproto are SweepSpecs, not model specs.
    if (absl::EndsWith(e->d_name, ".textproto") &&
        !absl::StartsWith(e->d_name, "sweep_")) {
      out.push_back(absl::StrCat(dir, "/", e->d_name));
    }
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace nnlab::fuzz

// A real nnlabd child process for fault tests (tests/nnlabd_process.h),
// with a gRPC client and the helpers that inspect its data directory.
#ifndef NNLAB_TESTS_SERVER_DAEMON_UTIL_H_
#define NNLAB_TESTS_SERVER_DAEMON_UTIL_H_

#include <dirent.h>
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/nnlabd_process.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {

// A child nnlabd on `data_dir` with one BLAS thread; its stderr is
// appended to `log`. The test fails if it does not start.
class Daemon : public NnlabdProcess {
 public:
  Daemon(const std::string& data_dir, const std::string& log,
         std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> flags = {"--data_dir=" + data_dir,
                                      "--blas_threads=1"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    const absl::Status s = Start(NNLAB_NNLABD_PATH, 0, flags, log);
    if (!s.ok()) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      ADD_FAILURE() << s << "\n" << text.str();
    }
  }

  bool ok() const { return running(); }
  // Sends `sig` and returns the exit status (or the signal as 128 + sig).
  int Kill(int sig) { return Signal(sig); }
  Client MakeClient() const {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    return Client(grpc::CreateCustomChannel(
        address(), grpc::InsecureChannelCredentials(), args));
  }
  // Resident set size in KiB.
  int64_t RssKib() const { return StatusKib("VmRSS"); }
};

// Names in `dir` ending in `suffix` (all entries, any type).
inline std::vector<std::string> FilesEndingIn(const std::string& dir,
                                              const std::string& suffix) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != ".." && absl::EndsWith(name, suffix)) {
      out.push_back(name);
    }
  }
  closedir(d);
  return out;
}

// The outputs of model `model` (2 inputs) for three fixed inputs: equal
// outputs mean equal weights.
inline std::vector<float> Outputs(Client& c, const std::string& model) {
  v1::InferRequest req;
  req.set_model_id(model);
  v1::Tensor* t = req.mutable_inputs();
  t->add_shape(3);
  t->add_shape(2);
  for (float v : {0.3f, -0.7f, 1.1f, 0.9f, -1.5f, -0.2f}) t->add_data(v);
  v1::InferResponse resp;
  auto ctx = Ctx();
  grpc::Status s = c.inference->Infer(ctx.get(), req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return std::vector<float>(resp.outputs().data().begin(),
                            resp.outputs().data().end());
}

}  // namespace nnlab::testing

#endif  // NNLAB_TESTS_SERVER_DAEMON_UTIL_H_

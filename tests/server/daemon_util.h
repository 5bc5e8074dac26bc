// A real nnlabd child process for fault tests: started on a data directory,
// killed with any signal, inspected through /proc (threads, RSS).
#ifndef NNLAB_TESTS_SERVER_DAEMON_UTIL_H_
#define NNLAB_TESTS_SERVER_DAEMON_UTIL_H_

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/server/server_test_util.h"

namespace nnlab::testing {

// A child nnlabd; reads the bound port from its first stdout line. Its
// stderr is appended to `log`.
class Daemon {
 public:
  Daemon(const std::string& data_dir, const std::string& log,
         std::vector<std::string> extra_flags = {}) {
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    std::vector<std::string> args = {NNLAB_NNLABD_PATH, "--listen=127.0.0.1:0",
                                     "--data_dir=" + data_dir,
                                     "--blas_threads=1"};
    for (std::string& f : extra_flags) args.push_back(std::move(f));
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const int err = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(err, STDERR_FILENO);
      close(out[0]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[256] = {0};
    if (fgets(line, sizeof(line), f) != nullptr) {
      sscanf(line, "nnlabd listening on port %d", &port_);
    }
    fclose(f);
    EXPECT_GT(port_, 0) << "nnlabd did not start; see " << log;
  }
  ~Daemon() {
    if (pid_ > 0) Kill(SIGKILL);
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  bool ok() const { return port_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }

  // Sends `sig` and returns the exit status (or the signal as 128 + sig).
  int Kill(int sig) {
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  Client MakeClient() const {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    return Client(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                            grpc::InsecureChannelCredentials(),
                                            args));
  }

  // Threads of the process (entries of /proc/<pid>/task).
  int Threads() const {
    int n = 0;
    DIR* d = opendir(absl::StrCat("/proc/", pid_, "/task").c_str());
    if (d == nullptr) return -1;
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    return n;
  }
  // Resident set size in KiB (VmRSS of /proc/<pid>/status).
  int64_t RssKib() const {
    std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
    std::string line;
    while (std::getline(in, line)) {
      if (absl::StartsWith(line, "VmRSS:")) {
        return std::strtoll(line.c_str() + 6, nullptr, 10);
      }
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
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

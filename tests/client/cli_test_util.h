// Helpers of the end-to-end tests: start the real nnlabd on a free loopback
// port with a temporary data directory, and run the real nnlab binary.
#ifndef NNLAB_TESTS_CLIENT_CLI_TEST_UTIL_H_
#define NNLAB_TESTS_CLIENT_CLI_TEST_UTIL_H_

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/nnlabd_process.h"

namespace nnlab::testing {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string MakeTempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr ? base : "/tmp", "/nnlab-", tag, "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* dir = mkdtemp(buf.data());
  return dir != nullptr ? std::string(dir) : std::string();
}

inline void RemoveTree(const std::string& dir) {
  if (dir.size() < 8) return;  // never anything like "/" or "/tmp"
  std::string cmd = absl::StrCat("rm -rf '", dir, "'");
  int ignored = std::system(cmd.c_str());
  (void)ignored;
}

struct RunResult {
  int exit_code = -1;  // 128 + signal if killed
  std::string out, err;
};

// Runs `argv` (argv[0] = program path) with extra "NAME=value" environment
// entries, waiting for it to exit; stdout and stderr are captured.
inline RunResult RunProcess(const std::vector<std::string>& argv,
                            const std::vector<std::string>& env = {}) {
  static int counter = 0;
  const std::string base =
      absl::StrCat(::testing::TempDir(), "/run-", getpid(), "-", counter++);
  const std::string out_path = base + ".out", err_path = base + ".err";
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(err, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (const std::string& e : env) putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  RunResult r;
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadAll(out_path);
  r.err = ReadAll(err_path);
  unlink(out_path.c_str());
  unlink(err_path.c_str());
  return r;
}

inline std::vector<std::string> Lines(const std::string& s) {
  return absl::StrSplit(s, '\n', absl::SkipEmpty());
}

// Parses one line of --json output into `msg`.
template <typename Msg>
bool FromJson(const std::string& line, Msg* msg) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;
  return google::protobuf::util::JsonStringToMessage(line, msg, opts).ok();
}

// A running nnlabd on 127.0.0.1 with a fresh data directory (removed at
// the end); SIGTERM and wait on Stop or destruction. Restart() starts it
// again on the same port with the same data.
class ServerProcess {
 public:
  // `extra_flags` are appended to nnlabd's command line.
  explicit ServerProcess(std::vector<std::string> extra_flags = {})
      : extra_flags_(std::move(extra_flags)) {
    data_dir_ = MakeTempDir("data");
    log_path_ = data_dir_ + ".log";
    Launch(0);
  }
  ~ServerProcess() {
    Stop();
    RemoveTree(data_dir_);
    unlink(log_path_.c_str());
  }

  // SIGTERM, then wait; the exit status (-1 if it was not running).
  int Stop() { return process_.Signal(SIGTERM); }
  // Stops if running, then serves the same data directory on the same port.
  bool Restart() {
    const int port = process_.port();
    Stop();
    Launch(port);
    return ok() && process_.port() == port;
  }

  bool ok() const { return process_.running(); }
  int port() const { return process_.port(); }
  std::string address() const { return process_.address(); }
  std::string log() const { return ReadAll(log_path_); }

 private:
  void Launch(int port) {
    std::vector<std::string> flags = {"--data_dir=" + data_dir_};
    flags.insert(flags.end(), extra_flags_.begin(), extra_flags_.end());
    (void)process_.Start(NNLAB_NNLABD_PATH, port, flags, log_path_);
  }

  std::vector<std::string> extra_flags_;
  NnlabdProcess process_;
  std::string data_dir_, log_path_;
};

inline std::string SourcePath(const std::string& rel) {
  return absl::StrCat(NNLAB_SOURCE_DIR, "/", rel);
}

}  // namespace nnlab::testing

#endif  // NNLAB_TESTS_CLIENT_CLI_TEST_UTIL_H_

// nnlabd as a child process, for the tests and benchmarks that need the
// real binary (restarts, crashes, the CLI end to end, the service path):
// started on 127.0.0.1, its port read from the line it prints once it
// serves, stopped with any signal, inspected through /proc. No gtest here,
// so benchmarks can use it too.
#ifndef NNLAB_TESTS_NNLABD_PROCESS_H_
#define NNLAB_TESTS_NNLABD_PROCESS_H_

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nnlab::testing {

class NnlabdProcess {
 public:
  NnlabdProcess() = default;
  // A process still running is killed (SIGKILL) and reaped.
  ~NnlabdProcess() { Signal(SIGKILL); }
  NnlabdProcess(const NnlabdProcess&) = delete;
  NnlabdProcess& operator=(const NnlabdProcess&) = delete;

  // Runs `binary --listen=127.0.0.1:<port> <flags...>` (port 0: any free
  // one) with stderr appended to `log`, and waits for "nnlabd listening on
  // port N" on its stdout. Lines before it are skipped, so a wrapper (a
  // profiler, say) may print its own. Unavailable, naming the log, if the
  // process ends or closes stdout without that line.
  // REQUIRES: not running.
  absl::Status Start(const std::string& binary, int port,
                     const std::vector<std::string>& flags,
                     const std::string& log) {
    port_ = 0;
    std::vector<std::string> args = {binary,
                                     absl::StrCat("--listen=127.0.0.1:", port)};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) return absl::InternalError("pipe failed");
    pid_ = fork();
    if (pid_ < 0) return absl::InternalError("fork failed");
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      FILE* err = std::fopen(log.c_str(), "a");
      if (err != nullptr) dup2(fileno(err), STDERR_FILENO);
      close(out[0]);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[512];
    while (port_ <= 0 && std::fgets(line, sizeof(line), f) != nullptr) {
      std::sscanf(line, "nnlabd listening on port %d", &port_);
    }
    std::fclose(f);
    if (port_ <= 0) {
      Signal(SIGKILL);
      return absl::UnavailableError(
          absl::StrCat(binary, " did not start; see ", log));
    }
    return absl::OkStatus();
  }

  // Sends `sig` and waits for the exit: the exit status, 128 + the signal
  // that ended it, or -1 if it was not running.
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  bool running() const { return pid_ > 0 && port_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  // Threads of the process (entries of /proc/<pid>/task), -1 if unreadable.
  int Threads() const {
    DIR* d = opendir(absl::StrCat("/proc/", pid_, "/task").c_str());
    if (d == nullptr) return -1;
    int n = 0;
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(d);
    return n;
  }

  // A /proc/<pid>/status field in KiB ("VmRSS", "VmHWM"), -1 if unreadable.
  int64_t StatusKib(const char* field) const {
    std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
    const std::string prefix = absl::StrCat(field, ":");
    std::string line;
    while (std::getline(in, line)) {
      if (absl::StartsWith(line, prefix)) {
        return std::strtoll(line.c_str() + prefix.size(), nullptr, 10);
      }
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace nnlab::testing

#endif  // NNLAB_TESTS_NNLABD_PROCESS_H_

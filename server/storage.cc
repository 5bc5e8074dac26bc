#include "server/storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "isa-l/crc.h"
#include "server/log.h"

namespace nnlab::server {
namespace {

constexpr char kMagic[4] = {'N', 'N', 'L', 'R'};
constexpr uint32_t kFrameVersion = 1;
constexpr size_t kHeaderSize = 4 + 4 + 8 + 4;

absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  const int err = errno;
  std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

void StoreLe(char* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<char>(v >> (8 * i));
}

// Writes the header of a frame at p; its payload follows at p + kHeaderSize.
void WriteHeader(char* p, absl::string_view payload) {
  std::memcpy(p, kMagic, sizeof(kMagic));
  StoreLe(p + 4, kFrameVersion, 4);
  StoreLe(p + 8, payload.size(), 8);
  StoreLe(p + 16, Crc32c(payload), 4);
}

uint64_t GetLe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
  // ISA-L works on the CRC register itself (no inversion on the way in or
  // out) and takes an int length.
  uint32_t reg = ~crc;
  constexpr size_t kChunk = size_t{1} << 30;
  while (!data.empty()) {
    const size_t n = std::min(data.size(), kChunk);
    reg = crc32_iscsi(
        reinterpret_cast<unsigned char*>(const_cast<char*>(data.data())),
        static_cast<int>(n), reg);
    data.remove_prefix(n);
  }
  return ~reg;
}

bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

absl::Status CheckId(absl::string_view field, absl::string_view id) {
  if (IsValidId(id)) return absl::OkStatus();
  if (id.empty())
    return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
  return absl::InvalidArgumentError(absl::StrCat(
      field, " must be 1 to 64 characters of [A-Za-z0-9_-], got \"",
      Printable(id), "\""));
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("empty directory name");
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus("cannot create directory", partial);
    }
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomic(const std::string& path,
                             absl::string_view contents) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      absl::StrCat(path, ".", getpid(), ".", counter.fetch_add(1), ".tmp");
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("cannot create", tmp);
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    const ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoStatus("cannot write", tmp);
      close(fd);
      unlink(tmp.c_str());
      return s;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status s = ErrnoStatus("cannot fsync", tmp);
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = ErrnoStatus("cannot rename", tmp);
    unlink(tmp.c_str());
    return s;
  }
  // The rename is durable only once the directory entry is.
  const std::string dir = DirName(path);
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoStatus("cannot open directory", dir);
  const int rc = fsync(dfd);
  close(dfd);
  if (rc != 0) return ErrnoStatus("cannot fsync directory", dir);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status s = ErrnoStatus("cannot read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::Status RemoveFile(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus("cannot remove", path);
  }
  return absl::OkStatus();
}

std::vector<std::string> ListFiles(const std::string& dir,
                                   absl::string_view suffix) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (struct dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (!absl::EndsWith(name, suffix)) continue;
    struct stat st;
    const std::string full = absl::StrCat(dir, "/", name);
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      names.push_back(name);
    }
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

int CleanTempFiles(const std::string& dir) {
  int removed = 0;
  for (const std::string& name : ListFiles(dir, ".tmp")) {
    if (unlink(absl::StrCat(dir, "/", name).c_str()) == 0) ++removed;
  }
  return removed;
}

std::string Frame(absl::string_view payload) {
  std::string out(kHeaderSize, '\0');
  out.append(payload.data(), payload.size());
  WriteHeader(out.data(), payload);
  return out;
}

bool AppendFramed(const google::protobuf::MessageLite& message,
                  std::string* out) {
  const size_t start = out->size();
  out->resize(start + kHeaderSize);
  if (!message.AppendToString(out)) {
    out->resize(start);
    return false;
  }
  char* frame = out->data() + start;
  WriteHeader(frame, absl::string_view(frame + kHeaderSize,
                                       out->size() - start - kHeaderSize));
  return true;
}

absl::StatusOr<std::string> Unframe(absl::string_view frame) {
  if (frame.size() < kHeaderSize ||
      std::memcmp(frame.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not an nnlab record (bad magic or too short)");
  }
  const uint32_t version = static_cast<uint32_t>(GetLe(frame.data() + 4, 4));
  if (version != kFrameVersion) {
    return absl::DataLossError(
        absl::StrCat("unsupported record version ", version));
  }
  const uint64_t length = GetLe(frame.data() + 8, 8);
  if (length != frame.size() - kHeaderSize) {
    return absl::DataLossError(absl::StrCat("record is torn: header says ",
                                            length, " bytes, file has ",
                                            frame.size() - kHeaderSize));
  }
  const uint32_t crc = static_cast<uint32_t>(GetLe(frame.data() + 16, 4));
  absl::string_view payload = frame.substr(kHeaderSize);
  if (Crc32c(payload) != crc) {
    return absl::DataLossError("record checksum mismatch (corrupted)");
  }
  return std::string(payload);
}

absl::Status WriteRecord(const std::string& path,
                         const google::protobuf::MessageLite& message) {
  std::string record;
  if (!AppendFramed(message, &record)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", path));
  }
  return WriteFileAtomic(path, record);
}

absl::Status ReadRecord(const std::string& path,
                        google::protobuf::MessageLite* message) {
  absl::StatusOr<std::string> data = ReadFile(path);
  if (!data.ok()) return data.status();
  absl::StatusOr<std::string> payload = Unframe(*data);
  if (!payload.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", payload.status().message()));
  }
  if (!message->ParseFromString(*payload)) {
    return absl::DataLossError(absl::StrCat(path, ": unparsable record"));
  }
  return absl::OkStatus();
}

}  // namespace nnlab::server

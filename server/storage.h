// Durable files for nnlabd: atomic writes, checksummed records, safe names.
//
// Every record on disk is a frame: "NNLR", format version (u32), payload
// length (u64), CRC-32C of the payload (u32), payload; little-endian. A torn
// or corrupted file reads as DATA_LOSS, never as garbage. Writes go to a
// temporary file in the same directory, are fsynced, renamed over the
// target and the directory is fsynced, so a crash leaves either the old or
// the new file. All functions are thread-safe (they share no state).
#ifndef NNLAB_SERVER_STORAGE_H_
#define NNLAB_SERVER_STORAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"

namespace nnlab::server {

// CRC-32C (Castagnoli), as used by iSCSI and leveldb; `crc` continues a
// previous value (0 to start). ISA-L's, with the CPU's CRC32 instruction
// where it has one: checkpoints, model files and uploads are checksummed
// whole.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

// True for identifiers clients may use for models, jobs and data sets:
// 1 to 64 characters of [A-Za-z0-9_-]. Such names can never traverse paths.
bool IsValidId(absl::string_view id);
// InvalidArgument naming `field` unless IsValidId(id).
absl::Status CheckId(absl::string_view field, absl::string_view id);

// Creates `dir` and its parents if missing.
absl::Status MakeDirs(const std::string& dir);

// Writes `contents` to `path` atomically and durably (temp file, fsync,
// rename, fsync of the directory).
absl::Status WriteFileAtomic(const std::string& path,
                             absl::string_view contents);
// Reads a whole file; NotFound if it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);
// Removes a file; OK if it does not exist.
absl::Status RemoveFile(const std::string& path);
// Names (not paths) of the regular files in `dir` ending in `suffix`,
// sorted.
std::vector<std::string> ListFiles(const std::string& dir,
                                   absl::string_view suffix);
// Removes temporary files ("*.tmp") a crash left in `dir`; returns how many.
int CleanTempFiles(const std::string& dir);

// Frames `payload` (see the file comment).
std::string Frame(absl::string_view payload);
// Appends `message` to `out` as a frame, serialised in place (no copy of
// the payload). False, with `out` unchanged, if it cannot be serialised.
bool AppendFramed(const google::protobuf::MessageLite& message,
                  std::string* out);
// The payload of a frame; DataLoss for a bad magic, version, length or
// checksum.
absl::StatusOr<std::string> Unframe(absl::string_view frame);

// Serializes, frames and atomically writes a message.
absl::Status WriteRecord(const std::string& path,
                         const google::protobuf::MessageLite& message);
// Reads a record written by WriteRecord; NotFound, or DataLoss naming the
// file when it is torn, corrupt or unparsable.
absl::Status ReadRecord(const std::string& path,
                        google::protobuf::MessageLite* message);

}  // namespace nnlab::server

#endif  // NNLAB_SERVER_STORAGE_H_

// A small structure-aware mutator for protobuf inputs (Debian ships no
// libprotobuf-mutator): it parses the input as the target's message,
// changes one field through reflection, and serializes it again, so the
// fuzzer spends its time on values that pass the parser. Integers go to
// edge values, floats to NaN/Inf/0, strings to paths, empty, long or
// dictionary words, enums to unknown numbers; repeated fields grow and
// shrink; nested messages are recursed into. Inputs that do not parse fall
// back to libFuzzer's byte-level LLVMFuzzerMutate.
//
// Not thread-safe (libFuzzer mutates on one thread).
#ifndef NNLAB_TESTS_FUZZ_PROTO_MUTATOR_H_
#define NNLAB_TESTS_FUZZ_PROTO_MUTATOR_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "google/protobuf/message.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace nnlab::fuzz {

// How a message travels in the fuzz input.
enum class Format { kBinary, kText, kJson };

class ProtoMutator {
 public:
  // `dictionary`: strings worth trying in string fields (model ids, data
  // set names...), besides the built-in edge cases.
  explicit ProtoMutator(std::vector<std::string> dictionary = {})
      : dictionary_(std::move(dictionary)) {}

  // Changes one field of `msg` (possibly deep inside it).
  void Mutate(google::protobuf::Message* msg, std::mt19937_64* rng);

  // The LLVMFuzzerCustomMutator body: `data[0, prefix)` is kept as is (a
  // selector the target reads), the rest is parsed as `prototype`'s type in
  // `format`, mutated, and written back. Returns the new size (<=
  // max_size). Falls back to LLVMFuzzerMutate when the rest does not parse
  // or the result would not fit, and now and then anyway so byte-level
  // mutations keep exploring the parsers.
  size_t MutateInput(const google::protobuf::Message& prototype, Format format,
                     size_t prefix, uint8_t* data, size_t size, size_t max_size,
                     unsigned int seed);

 private:
  void MutateField(google::protobuf::Message* msg,
                   const google::protobuf::FieldDescriptor* f,
                   std::mt19937_64* rng, int depth);
  void MutateMessage(google::protobuf::Message* msg, std::mt19937_64* rng,
                     int depth);
  std::string NewString(const std::string& old, std::mt19937_64* rng);

  std::vector<std::string> dictionary_;
};

// Parses `bytes` as `format` into `msg`; false if it does not parse.
// Text and JSON parsing report nothing on stderr.
bool ParseAs(Format format, const std::string& bytes,
             google::protobuf::Message* msg);
// Serializes `msg` as `format`.
std::string SerializeAs(Format format, const google::protobuf::Message& msg);

}  // namespace nnlab::fuzz

#endif  // NNLAB_TESTS_FUZZ_PROTO_MUTATOR_H_

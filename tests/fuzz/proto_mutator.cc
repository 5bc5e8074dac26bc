#include "tests/fuzz/proto_mutator.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"

namespace nnlab::fuzz {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr int kMaxDepth = 12;
// Elements one mutation may add to a repeated field.
constexpr int kMaxGrow = 64;

class SilentErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
  void AddWarning(int, int, const std::string&) override {}
};

template <typename T>
T Pick(std::mt19937_64* rng, std::initializer_list<T> values) {
  std::uniform_int_distribution<size_t> d(0, values.size() - 1);
  return *(values.begin() + d(*rng));
}

size_t Below(std::mt19937_64* rng, size_t n) {
  return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(*rng);
}

int64_t NewInt(int64_t old, std::mt19937_64* rng) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  switch (Below(rng, 12)) {
    case 0:
      return Pick<int64_t>(rng, {0, 1, -1, 2, 3, 7, 8, 16, 28, 255, 256});
    case 1:
      return Pick<int64_t>(
          rng, {kMax, kMin, kMax / 2, kMin / 2, kMax - 1, kMin + 1});
    case 2:
      return Pick<int64_t>(
          rng, {int64_t{1} << 31, (int64_t{1} << 31) - 1, -(int64_t{1} << 31),
                int64_t{1} << 32, int64_t{0xFFFFFFFF}, int64_t{1} << 62});
    case 3:
      // Around the server's limits (max_dim 2^24, elements 2^27).
      return Pick<int64_t>(
          rng, {int64_t{1} << 24, (int64_t{1} << 24) + 1, int64_t{1} << 27,
                (int64_t{1} << 27) + 1, 50'000'000, 50'000'001, 1000, 1001,
                65536, 65537, 10000, 10001, 1024, 1025});
    // Wrapping arithmetic: the fuzz inputs hold any value.
    case 4:
      return static_cast<int64_t>(static_cast<uint64_t>(old) + 1);
    case 5:
      return static_cast<int64_t>(static_cast<uint64_t>(old) - 1);
    case 6:
      return static_cast<int64_t>(0 - static_cast<uint64_t>(old));
    case 7:
      return static_cast<int64_t>(static_cast<uint64_t>(old) * 2);
    case 8:
      return old / 2;
    case 9:
      return static_cast<int64_t>(Below(rng, 64));
    case 10:
      return static_cast<int64_t>((*rng)());
    default:
      return static_cast<int64_t>(static_cast<uint64_t>(old) ^
                                  (uint64_t{1} << Below(rng, 64)));
  }
}

double NewFloat(double old, std::mt19937_64* rng) {
  switch (Below(rng, 10)) {
    case 0:
      return std::numeric_limits<double>::quiet_NaN();
    case 1:
      return std::numeric_limits<double>::infinity();
    case 2:
      return -std::numeric_limits<double>::infinity();
    case 3:
      return Pick<double>(rng, {0.0, -0.0, 1.0, -1.0, 0.5, 1e-3, 0.9, 0.999});
    case 4:
      return Pick<double>(rng, {1e38, -1e38, 3.5e38, 1e-45, 1e-320, 1e308,
                                std::numeric_limits<double>::max()});
    case 5:
      return old * 2;
    case 6:
      return -old;
    case 7:
      return old / 3;
    case 8:
      return std::uniform_real_distribution<double>(-10, 10)(*rng);
    default:
      return old + 1;
  }
}

// A double as a float without the undefined out-of-range conversion.
float ToFloat(double v) {
  if (v > std::numeric_limits<float>::max()) {
    return std::numeric_limits<float>::infinity();
  }
  if (v < -std::numeric_limits<float>::max()) {
    return -std::numeric_limits<float>::infinity();
  }
  return static_cast<float>(v);
}

}  // namespace

bool ParseAs(Format format, const std::string& bytes, Message* msg) {
  msg->Clear();
  switch (format) {
    case Format::kBinary:
      return msg->ParseFromString(bytes);
    case Format::kText: {
      google::protobuf::TextFormat::Parser parser;
      SilentErrors errors;
      parser.RecordErrorsTo(&errors);
      return parser.ParseFromString(bytes, msg);
    }
    case Format::kJson:
      return google::protobuf::util::JsonStringToMessage(bytes, msg).ok();
  }
  return false;
}

std::string SerializeAs(Format format, const Message& msg) {
  std::string out;
  switch (format) {
    case Format::kBinary:
      msg.SerializeToString(&out);
      break;
    case Format::kText:
      google::protobuf::TextFormat::PrintToString(msg, &out);
      break;
    case Format::kJson:
      if (!google::protobuf::util::MessageToJsonString(msg, &out).ok()) {
        out.clear();
      }
      break;
  }
  return out;
}

std::string ProtoMutator::NewString(const std::string& old,
                                    std::mt19937_64* rng) {
  switch (Below(rng, 10)) {
    case 0:
      return "";
    case 1:
      return Pick<std::string>(
          rng, {"../x", "../../etc/passwd", "/tmp/x", "a/b", ".", "..", "x\n",
                "x y", "*", std::string("a\0b", 3), "\xff\xfe"});
    case 2:
      return std::string(Pick<size_t>(rng, {64, 65, 256, 257, 4096}), 'a');
    case 3:
    case 4:
      if (!dictionary_.empty())
        return dictionary_[Below(rng, dictionary_.size())];
      return "a";
    case 5:
      return old + old;
    case 6:
      return old.substr(0, Below(rng, old.size() + 1));
    case 7: {
      std::string s = old;
      s.push_back(static_cast<char>(Below(rng, 256)));
      return s;
    }
    default: {
      // Byte-level mutation of the string itself.
      std::string s = old;
      const size_t cap = s.size() * 2 + 16;
      s.resize(cap);
      const size_t n = LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(s.data()),
                                        old.size(), cap);
      s.resize(n);
      return s;
    }
  }
}

void ProtoMutator::MutateField(Message* msg, const FieldDescriptor* f,
                               std::mt19937_64* rng, int depth) {
  const Reflection* r = msg->GetReflection();
  if (f->is_repeated()) {
    const int n = r->FieldSize(*msg, f);
    const size_t op = Below(rng, 8);
    if (op == 0 && n > 0) {
      r->RemoveLast(msg, f);
      return;
    }
    if (op == 1) {
      r->ClearField(msg, f);
      return;
    }
    if (op == 2 && n > 1) {
      r->SwapElements(msg, f, static_cast<int>(Below(rng, n)),
                      static_cast<int>(Below(rng, n)));
      return;
    }
    if (op == 3 || op == 4 || n == 0) {
      // Grow: copies of the last element (or defaults), one mutated.
      const int add = op == 4 ? 1 + static_cast<int>(Below(rng, kMaxGrow)) : 1;
      for (int i = 0; i < add; ++i) {
        switch (f->cpp_type()) {
#define NNLAB_GROW(CPP, Type, Def)                                            \
  case FieldDescriptor::CPP:                                                  \
    r->Add##Type(msg, f, n > 0 ? r->GetRepeated##Type(*msg, f, n - 1) : Def); \
    break;
          NNLAB_GROW(CPPTYPE_INT32, Int32, 0)
          NNLAB_GROW(CPPTYPE_INT64, Int64, 0)
          NNLAB_GROW(CPPTYPE_UINT32, UInt32, 0)
          NNLAB_GROW(CPPTYPE_UINT64, UInt64, 0)
          NNLAB_GROW(CPPTYPE_FLOAT, Float, 0)
          NNLAB_GROW(CPPTYPE_DOUBLE, Double, 0)
          NNLAB_GROW(CPPTYPE_BOOL, Bool, false)
          NNLAB_GROW(CPPTYPE_STRING, String, std::string())
          NNLAB_GROW(CPPTYPE_ENUM, EnumValue, 0)
#undef NNLAB_GROW
          case FieldDescriptor::CPPTYPE_MESSAGE: {
            Message* m = r->AddMessage(msg, f);
            if (n > 0) m->CopyFrom(r->GetRepeatedMessage(*msg, f, n - 1));
            break;
          }
        }
      }
      if (op == 4) return;
    }
    // Mutate one element.
    const int size = r->FieldSize(*msg, f);
    const int i = static_cast<int>(Below(rng, size));
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetRepeatedInt32(
            msg, f, i,
            static_cast<int32_t>(NewInt(r->GetRepeatedInt32(*msg, f, i), rng)));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetRepeatedInt64(msg, f, i,
                            NewInt(r->GetRepeatedInt64(*msg, f, i), rng));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetRepeatedUInt32(msg, f, i,
                             static_cast<uint32_t>(NewInt(
                                 r->GetRepeatedUInt32(*msg, f, i), rng)));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetRepeatedUInt64(
            msg, f, i,
            static_cast<uint64_t>(NewInt(
                static_cast<int64_t>(r->GetRepeatedUInt64(*msg, f, i)), rng)));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetRepeatedFloat(
            msg, f, i, ToFloat(NewFloat(r->GetRepeatedFloat(*msg, f, i), rng)));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetRepeatedDouble(msg, f, i,
                             NewFloat(r->GetRepeatedDouble(*msg, f, i), rng));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetRepeatedBool(msg, f, i, !r->GetRepeatedBool(*msg, f, i));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetRepeatedString(msg, f, i,
                             NewString(r->GetRepeatedString(*msg, f, i), rng));
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetRepeatedEnumValue(
            msg, f, i,
            Below(rng, 2) == 0
                ? f->enum_type()
                      ->value(Below(rng, f->enum_type()->value_count()))
                      ->number()
                : Pick<int>(rng, {-1, 99, 1 << 30}));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        MutateMessage(r->MutableRepeatedMessage(msg, f, i), rng, depth + 1);
        break;
    }
    return;
  }
  // Singular fields.
  if (Below(rng, 10) == 0) {
    r->ClearField(msg, f);
    return;
  }
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      r->SetInt32(msg, f,
                  static_cast<int32_t>(NewInt(r->GetInt32(*msg, f), rng)));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      r->SetInt64(msg, f, NewInt(r->GetInt64(*msg, f), rng));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      r->SetUInt32(msg, f,
                   static_cast<uint32_t>(NewInt(r->GetUInt32(*msg, f), rng)));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      r->SetUInt64(msg, f,
                   static_cast<uint64_t>(NewInt(
                       static_cast<int64_t>(r->GetUInt64(*msg, f)), rng)));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      r->SetFloat(msg, f, ToFloat(NewFloat(r->GetFloat(*msg, f), rng)));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      r->SetDouble(msg, f, NewFloat(r->GetDouble(*msg, f), rng));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      r->SetBool(msg, f, !r->GetBool(*msg, f));
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      r->SetString(msg, f, NewString(r->GetString(*msg, f), rng));
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      r->SetEnumValue(
          msg, f,
          Below(rng, 2) == 0
              ? f->enum_type()
                    ->value(Below(rng, f->enum_type()->value_count()))
                    ->number()
              : Pick<int>(rng, {-1, 99, 1 << 30}));
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      MutateMessage(r->MutableMessage(msg, f), rng, depth + 1);
      break;
  }
}

void ProtoMutator::MutateMessage(Message* msg, std::mt19937_64* rng,
                                 int depth) {
  const google::protobuf::Descriptor* d = msg->GetDescriptor();
  if (d->field_count() == 0 || depth > kMaxDepth) return;
  const Reflection* r = msg->GetReflection();
  // Prefer fields that are set (they are where the structure is), but
  // sometimes set a new one.
  std::vector<const FieldDescriptor*> set;
  r->ListFields(*msg, &set);
  const FieldDescriptor* f =
      !set.empty() && Below(rng, 3) != 0
          ? set[Below(rng, set.size())]
          : d->field(static_cast<int>(Below(rng, d->field_count())));
  MutateField(msg, f, rng, depth);
}

void ProtoMutator::Mutate(Message* msg, std::mt19937_64* rng) {
  MutateMessage(msg, rng, 0);
}

size_t ProtoMutator::MutateInput(const Message& prototype, Format format,
                                 size_t prefix, uint8_t* data, size_t size,
                                 size_t max_size, unsigned int seed) {
  std::mt19937_64 rng(seed);
  if (size < prefix || Below(&rng, 5) == 0) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::unique_ptr<Message> msg(prototype.New());
  const std::string rest(reinterpret_cast<const char*>(data) + prefix,
                         size - prefix);
  if (!ParseAs(format, rest, msg.get())) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  const int rounds = 1 + static_cast<int>(Below(&rng, 3));
  for (int i = 0; i < rounds; ++i) Mutate(msg.get(), &rng);
  const std::string out = SerializeAs(format, *msg);
  if (prefix + out.size() > max_size ||
      (format != Format::kBinary && out.empty())) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::memcpy(data + prefix, out.data(), out.size());
  return prefix + out.size();
}

}  // namespace nnlab::fuzz

#include "client/cli/spec.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace nnlab::cli {
namespace {

namespace pb = google::protobuf;

// A parse failure at a 1-based position; line 0 = position unknown.
struct ParseError {
  int line = 0;
  int column = 0;
  std::string message;
};

absl::Status ToStatus(const std::string& file_name, const ParseError& e) {
  if (e.line == 0) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": ", e.message));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(file_name, ":", e.line, ":", e.column, ": ", e.message));
}

class FirstErrorCollector : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column,
                const std::string& message) override {
    if (!error_.message.empty()) return;
    error_.line = line + 1;
    error_.column = column + 1;
    error_.message = message;
  }
  const ParseError& error() const { return error_; }

 private:
  ParseError error_;
};

size_t LineColumnToOffset(const std::string& text, int line, int column) {
  size_t offset = 0;
  for (int l = 1; l < line && offset < text.size(); ++offset) {
    if (text[offset] == '\n') ++l;
  }
  return std::min(text.size(), offset + static_cast<size_t>(column - 1));
}

// The text format parser reports an unknown field or enum value at the
// token after it; point at the name itself (its last occurrence as a whole
// word before the reported position).
void PointAtName(const std::string& text, ParseError* e) {
  std::string name;
  for (const char* marker :
       {"has no field named \"", "Unknown enumeration value of \""}) {
    size_t p = e->message.find(marker);
    if (p == std::string::npos) continue;
    p += std::strlen(marker);
    size_t q = e->message.find('"', p);
    if (q != std::string::npos) name = e->message.substr(p, q - p);
    break;
  }
  if (name.empty() || e->line == 0) return;
  auto is_word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  };
  size_t end = LineColumnToOffset(text, e->line, e->column);
  size_t at = end;
  while (at != std::string::npos && at > 0) {
    at = text.rfind(name, at - 1);
    if (at == std::string::npos) break;
    const bool starts = at == 0 || !is_word(text[at - 1]);
    const bool ends =
        at + name.size() >= text.size() || !is_word(text[at + name.size()]);
    if (starts && ends) break;
  }
  if (at == std::string::npos || at >= end) return;
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  e->line = line;
  e->column = static_cast<int>(at - line_start) + 1;
}

bool TextProtoInto(const std::string& text, pb::Message* msg,
                   ParseError* error) {
  FirstErrorCollector errors;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  msg->Clear();
  if (parser.ParseFromString(text, msg)) return true;
  *error = errors.error();
  if (error->message.empty()) error->message = "cannot parse text format";
  PointAtName(text, error);
  return false;
}

// Feeds the JSON converter one byte per Next(), so that when it stops on a
// syntax error or a bad value, ByteCount() is just past the offending byte.
class ByteAtATimeStream : public pb::io::ZeroCopyInputStream {
 public:
  explicit ByteAtATimeStream(const std::string& s) : s_(s) {}
  bool Next(const void** data, int* size) override {
    if (pos_ >= s_.size()) return false;
    *data = s_.data() + pos_;
    *size = 1;
    ++pos_;
    return true;
  }
  void BackUp(int count) override { pos_ -= static_cast<size_t>(count); }
  bool Skip(int count) override {
    pos_ += static_cast<size_t>(count);
    if (pos_ > s_.size()) {
      pos_ = s_.size();
      return false;
    }
    return true;
  }
  int64_t ByteCount() const override { return static_cast<int64_t>(pos_); }

 private:
  const std::string& s_;
  size_t pos_ = 0;
};

// Finds where a field path reported by the JSON converter, e.g.
// "layers[1].dense" plus the unknown key "unit", sits in the text. This
// only walks the JSON the converter has already read, to point at the
// place it complained about.
class JsonLocator {
 public:
  struct Step {
    std::string name;  // proto field name
    int index = -1;    // repeated element, or -1
  };

  explicit JsonLocator(const std::string& text) : t_(text) {}

  // Offset of the value at `path` (or of `key` inside it), npos if absent.
  size_t Find(const std::vector<Step>& path, const std::string& key) {
    size_t pos = SkipWs(0);
    for (const Step& step : path) {
      pos = FindKey(pos, step.name);
      if (pos == std::string::npos) return pos;
      pos = ValueAfterKey(pos);
      if (step.index >= 0) {
        pos = Element(pos, step.index);
        if (pos == std::string::npos) return pos;
      }
    }
    if (key.empty()) return pos;
    return FindKey(pos, key);
  }

 private:
  size_t SkipWs(size_t p) const {
    while (p < t_.size() && std::isspace(static_cast<unsigned char>(t_[p]))) {
      ++p;
    }
    return p;
  }
  // p at '"': returns the position after the closing quote; *s gets the raw
  // contents (escapes kept, enough for field names).
  size_t String(size_t p, std::string* s) const {
    size_t q = p + 1;
    while (q < t_.size() && t_[q] != '"') q += (t_[q] == '\\') ? 2 : 1;
    if (s != nullptr) *s = t_.substr(p + 1, q - p - 1);
    return std::min(q + 1, t_.size());
  }
  // Position after the value starting at p.
  size_t SkipValue(size_t p) const {
    p = SkipWs(p);
    if (p >= t_.size()) return p;
    char c = t_[p];
    if (c == '"') return String(p, nullptr);
    if (c == '{' || c == '[') {
      int depth = 0;
      while (p < t_.size()) {
        char d = t_[p];
        if (d == '"') {
          p = String(p, nullptr);
          continue;
        }
        if (d == '{' || d == '[') ++depth;
        if (d == '}' || d == ']') {
          if (--depth == 0) return p + 1;
        }
        ++p;
      }
      return p;
    }
    while (p < t_.size() && t_[p] != ',' && t_[p] != '}' && t_[p] != ']' &&
           !std::isspace(static_cast<unsigned char>(t_[p]))) {
      ++p;
    }
    return p;
  }
  static std::string Camel(const std::string& name) {
    std::string out;
    bool up = false;
    for (char c : name) {
      if (c == '_') {
        up = true;
        continue;
      }
      out += up ? static_cast<char>(std::toupper(c)) : c;
      up = false;
    }
    return out;
  }
  // p at an object's '{': position of the '"' of key `name` (proto or
  // lowerCamel spelling), npos if absent.
  size_t FindKey(size_t p, const std::string& name) const {
    p = SkipWs(p);
    if (p >= t_.size() || t_[p] != '{') return std::string::npos;
    const std::string camel = Camel(name);
    p = SkipWs(p + 1);
    while (p < t_.size() && t_[p] == '"') {
      std::string k;
      size_t after = String(p, &k);
      if (k == name || k == camel) return p;
      size_t colon = SkipWs(after);
      if (colon >= t_.size() || t_[colon] != ':') return std::string::npos;
      p = SkipWs(SkipValue(colon + 1));
      if (p < t_.size() && t_[p] == ',') p = SkipWs(p + 1);
    }
    return std::string::npos;
  }
  // p at a key's '"': position of its value.
  size_t ValueAfterKey(size_t p) const {
    p = SkipWs(String(p, nullptr));
    if (p < t_.size() && t_[p] == ':') ++p;
    return SkipWs(p);
  }
  // p at '[': position of element i, npos if absent.
  size_t Element(size_t p, int i) const {
    if (p >= t_.size() || t_[p] != '[') return std::string::npos;
    p = SkipWs(p + 1);
    for (int k = 0; k < i; ++k) {
      p = SkipWs(SkipValue(p));
      if (p >= t_.size() || t_[p] != ',') return std::string::npos;
      p = SkipWs(p + 1);
    }
    return p;
  }

  const std::string& t_;
};

// "(layers[1].dense) unit: Cannot find field." -> path + key "unit";
// "(input_shape[0]): invalid value ..." -> path, no key.
bool ParseConverterPath(const std::string& msg,
                        std::vector<JsonLocator::Step>* path,
                        std::string* key) {
  // A top-level unknown key comes without a path: "layerz: Cannot find
  // field."
  size_t close = 0;
  std::string inside;
  if (!msg.empty() && msg[0] == '(') {
    close = msg.find(')');
    if (close == std::string::npos) return false;
    inside = msg.substr(1, close - 1);
  } else if (absl::EndsWith(msg, "Cannot find field.")) {
    close = std::string::npos;
  } else {
    return false;
  }
  for (absl::string_view part :
       absl::StrSplit(inside, '.', absl::SkipEmpty())) {
    JsonLocator::Step step;
    size_t bracket = part.find('[');
    step.name = std::string(part.substr(0, bracket));
    if (bracket != absl::string_view::npos) {
      size_t end = part.find(']', bracket);
      int index = 0;
      if (end == absl::string_view::npos ||
          !absl::SimpleAtoi(part.substr(bracket + 1, end - bracket - 1),
                            &index)) {
        return false;
      }
      step.index = index;
    }
    path->push_back(std::move(step));
  }
  key->clear();
  absl::string_view rest = absl::string_view(msg);
  if (close != std::string::npos) rest = rest.substr(close + 1);
  if (absl::EndsWith(rest, "Cannot find field.")) {
    rest = absl::StripAsciiWhitespace(rest);
    size_t colon = rest.find(':');
    if (colon != absl::string_view::npos) {
      *key = std::string(absl::StripAsciiWhitespace(rest.substr(0, colon)));
    }
  }
  return true;
}

void OffsetToLineColumn(const std::string& text, size_t offset, ParseError* e) {
  offset = std::min(offset, text.size());
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  e->line = line;
  e->column = static_cast<int>(offset - line_start) + 1;
}

bool JsonInto(const std::string& text, pb::Message* msg, ParseError* error) {
  msg->Clear();
  const std::string url_prefix = "type.googleapis.com";
  std::unique_ptr<pb::util::TypeResolver> resolver(
      pb::util::NewTypeResolverForDescriptorPool(
          url_prefix, msg->GetDescriptor()->file()->pool()));
  ByteAtATimeStream in(text);
  std::string binary;
  pb::util::Status s;
  {
    pb::io::StringOutputStream out(&binary);
    s = pb::util::JsonToBinaryStream(
        resolver.get(),
        absl::StrCat(url_prefix, "/", msg->GetDescriptor()->full_name()), &in,
        &out);
  }
  if (s.ok()) {
    if (msg->ParseFromString(binary)) return true;
    error->message = "cannot decode the converted message";
    return false;
  }
  // The converter's message may continue with a snippet and a caret on
  // further lines; the position is reported separately.
  std::string message(s.message());
  message = message.substr(0, message.find('\n'));
  error->message = message;

  std::vector<JsonLocator::Step> path;
  std::string key;
  size_t offset = std::string::npos;
  if (ParseConverterPath(message, &path, &key)) {
    offset = JsonLocator(text).Find(path, key);
  }
  if (offset == std::string::npos) {
    // Syntax errors and bad values stop the converter right after the byte
    // it choked on.
    offset = in.ByteCount() > 0 ? static_cast<size_t>(in.ByteCount() - 1) : 0;
  }
  OffsetToLineColumn(text, offset, error);
  return false;
}

bool ParseInto(const std::string& text, bool json, pb::Message* msg,
               ParseError* error) {
  return json ? JsonInto(text, msg, error) : TextProtoInto(text, msg, error);
}

}  // namespace

absl::Status ParseTextProto(const std::string& text,
                            const std::string& file_name, pb::Message* msg) {
  ParseError e;
  if (TextProtoInto(text, msg, &e)) return absl::OkStatus();
  return ToStatus(file_name, e);
}

absl::Status ParseJson(const std::string& text, const std::string& file_name,
                       pb::Message* msg) {
  ParseError e;
  if (JsonInto(text, msg, &e)) return absl::OkStatus();
  return ToStatus(file_name, e);
}

absl::Status ParseModelDefinition(const std::string& text,
                                  const std::string& file_name, bool json,
                                  v1::CreateModelRequest* req) {
  const bool declared_gan =
      !json && absl::StrContains(text, "proto-message: nnlab.v1.GanSpec");
  ParseError model_error, gan_error;
  if (!declared_gan) {
    if (ParseInto(text, json, req->mutable_spec(), &model_error)) {
      return absl::OkStatus();
    }
  }
  v1::GanSpec gan;
  if (ParseInto(text, json, &gan, &gan_error)) {
    *req->mutable_gan() = std::move(gan);
    return absl::OkStatus();
  }
  req->clear_definition();
  // Neither reading works: the GanSpec's error only helps when the text is
  // plainly a GAN (the ModelSpec reading tripped over a GAN-only field).
  const bool gan_like =
      declared_gan || absl::StrContains(model_error.message, "\"generator\"") ||
      absl::StrContains(model_error.message, "\"discriminator\"") ||
      absl::StartsWith(model_error.message, "generator:") ||
      absl::StartsWith(model_error.message, "discriminator:");
  return ToStatus(file_name, gan_like ? gan_error : model_error);
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status LoadModelDefinition(const std::string& path,
                                 v1::CreateModelRequest* req) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseModelDefinition(*text, path, absl::EndsWith(path, ".json"), req);
}

}  // namespace nnlab::cli

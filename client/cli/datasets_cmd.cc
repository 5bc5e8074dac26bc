// nnlab datasets list/upload/delete.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/cli/common.h"
#include "client/cli/data.h"

namespace nnlab::cli {
namespace {

struct UploadFlags {
  std::string images, labels, name;
  int64_t test = 0;
};

int RunUpload(const Globals& g, const UploadFlags& f) {
  auto data = LoadIdx(f.images, f.labels);
  if (!data.ok()) return Fail(data.status());
  if (f.test < 0 || f.test >= data->count) {
    return Usage(
        absl::StrCat("--test ", f.test, ": must be in [0, ", data->count, ")"));
  }
  v1::DatasetHeader h;
  h.set_name(f.name.empty() ? f.images : f.name);
  h.add_sample_shape(data->sample_size());
  h.set_num_classes(data->num_classes);
  h.set_num_samples(data->count);
  h.set_test_samples(f.test);
  // Little-endian float32: every input (x / 255), then every label.
  std::string payload;
  payload.reserve(
      static_cast<size_t>(data->count * (data->sample_size() + 1) * 4));
  auto put = [&](float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    char b[4] = {static_cast<char>(bits), static_cast<char>(bits >> 8),
                 static_cast<char>(bits >> 16), static_cast<char>(bits >> 24)};
    payload.append(b, 4);
  };
  for (uint8_t p : data->pixels) put(static_cast<float>(p) / 255.0f);
  for (uint8_t l : data->labels) put(static_cast<float>(l));
  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());
  return PrintOr<v1::DatasetInfo>(
      (*client)->UploadDataset(h, payload), g,
      [](const v1::DatasetInfo& d) { return DatasetsTable({d}); });
}

}  // namespace

void AddDatasetsCommands(CLI::App& app, Cli& cli) {
  const Globals& g = cli.globals;
  CLI::App* datasets =
      app.add_subcommand("datasets", "List, upload and delete data sets");
  datasets->require_subcommand(1);

  CLI::App* dlist =
      datasets->add_subcommand("list", "List built-in and uploaded data sets");
  dlist->callback([&cli, &g] {
    cli.run = [&g] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto list = (*client)->ListDatasets();
      if (!list.ok()) return Fail(list.status());
      if (g.json) {
        for (const auto& d : *list) PrintJson(d);
      } else {
        std::printf("%s", DatasetsTable(*list).c_str());
      }
      return kExitOk;
    };
  });

  auto upload = std::make_shared<UploadFlags>();
  CLI::App* dupload = datasets->add_subcommand(
      "upload",
      "Upload labelled 8-bit images from IDX files (as MNIST is stored)");
  dupload->add_option("--images", upload->images, "IDX image file")->required();
  dupload->add_option("--labels", upload->labels, "IDX label file")->required();
  dupload->add_option("--name", upload->name, "Human-readable name");
  dupload->add_option("--test", upload->test,
                      "The last N samples form the test set");
  dupload->callback([&cli, &g, upload] {
    cli.run = [&g, upload] { return RunUpload(g, *upload); };
  });

  auto dataset_id = std::make_shared<std::string>();
  CLI::App* ddel =
      datasets->add_subcommand("delete", "Delete an uploaded data set");
  ddel->add_option("DATASET", *dataset_id, "Data set id")->required();
  ddel->callback([&cli, &g, dataset_id] {
    cli.run = [&g, dataset_id] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      absl::Status s = (*client)->DeleteDataset(*dataset_id);
      if (!s.ok()) return Fail(s);
      if (g.json) {
        std::printf("{}\n");
      } else {
        std::printf("deleted data set %s\n", dataset_id->c_str());
      }
      return kExitOk;
    };
  });
}

}  // namespace nnlab::cli

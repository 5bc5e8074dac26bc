// nnlab models create/list/get/delete/export/import.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cli/common.h"
#include "client/cli/spec.h"
#include "google/protobuf/text_format.h"

namespace nnlab::cli {
namespace {

// Reads a ModelFile: binary (default), or text format / JSON by extension.
absl::Status ReadModelFile(const std::string& path, v1::ModelFile* file) {
  auto data = ReadFileToString(path);
  if (!data.ok()) return data.status();
  if (absl::EndsWith(path, ".json")) return ParseJson(*data, path, file);
  if (absl::EndsWith(path, ".textproto") || absl::EndsWith(path, ".txtpb")) {
    return ParseTextProto(*data, path, file);
  }
  if (!file->ParseFromString(*data)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a model file written by `nnlab models export`"));
  }
  return absl::OkStatus();
}

absl::Status WriteBytes(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status WriteModelFile(const std::string& path,
                            const v1::ModelFile& file) {
  std::string data;
  if (absl::EndsWith(path, ".json")) {
    data = ToJsonLine(file) + "\n";
  } else if (absl::EndsWith(path, ".textproto") ||
             absl::EndsWith(path, ".txtpb")) {
    google::protobuf::TextFormat::PrintToString(file, &data);
  } else {
    file.SerializeToString(&data);
  }
  return WriteBytes(path, data);
}

struct ModelsFlags {
  std::string spec_path, model_id, file_path;
  std::string format = "native";  // export: native | onnx
  bool quiet = false;
};

}  // namespace

void AddModelsCommands(CLI::App& app, Cli& cli) {
  auto f = std::make_shared<ModelsFlags>();
  const Globals& g = cli.globals;
  CLI::App* models = app.add_subcommand(
      "models", "Create, list, inspect, delete, export and import models");
  models->require_subcommand(1);

  CLI::App* create = models->add_subcommand(
      "create", "Create a model from a spec file (.textproto or .json)");
  create->add_option("--spec", f->spec_path, "ModelSpec or GanSpec file")
      ->required();
  create->add_option("--id", f->model_id,
                     "Model id (default: chosen by the server)");
  create->add_flag("-q,--quiet", f->quiet, "Print only the model id");
  create->callback([&cli, &g, f] {
    cli.run = [&g, f] {
      v1::CreateModelRequest req;
      absl::Status s = LoadModelDefinition(f->spec_path, &req);
      if (!s.ok()) return Fail(s);
      req.set_model_id(f->model_id);
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto m = (*client)->CreateModel(req);
      if (m.ok() && f->quiet && !g.json) {
        std::printf("%s\n", m->model_id().c_str());
        return kExitOk;
      }
      return PrintOr<v1::Model>(m, g, FormatModel);
    };
  });

  CLI::App* mlist = models->add_subcommand("list", "List models");
  mlist->callback([&cli, &g] {
    cli.run = [&g] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      auto list = (*client)->ListModels();
      if (!list.ok()) return Fail(list.status());
      if (g.json) {
        for (const auto& m : *list) PrintJson(m);
      } else {
        std::printf("%s", ModelsTable(*list).c_str());
      }
      return kExitOk;
    };
  });

  CLI::App* mget = models->add_subcommand("get", "Describe a model");
  mget->add_option("MODEL", f->model_id, "Model id")->required();
  mget->callback([&cli, &g, f] {
    cli.run = [&g, f] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      return PrintOr<v1::Model>((*client)->GetModel(f->model_id), g,
                                FormatModel);
    };
  });

  CLI::App* mdel = models->add_subcommand(
      "delete", "Delete a model, its weights and checkpoints");
  mdel->add_option("MODEL", f->model_id, "Model id")->required();
  mdel->callback([&cli, &g, f] {
    cli.run = [&g, f] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      absl::Status s = (*client)->DeleteModel(f->model_id);
      if (!s.ok()) return Fail(s);
      if (g.json) {
        std::printf("{}\n");
      } else {
        std::printf("deleted model %s\n", f->model_id.c_str());
      }
      return kExitOk;
    };
  });

  CLI::App* mexport =
      models->add_subcommand("export",
                             "Write a model (definition + weights) to a file: "
                             "binary, .json/.textproto, or ONNX");
  mexport->add_option("MODEL", f->model_id, "Model id")->required();
  mexport->add_option("--out", f->file_path, "Output file")->required();
  mexport
      ->add_option("--format", f->format,
                   "native (nnlab's model file) or onnx (opset 13; a GAN "
                   "exports its generator)")
      ->check(CLI::IsMember({"native", "onnx"}));
  mexport->callback([&cli, &g, f] {
    cli.run = [&g, f] {
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      if (f->format == "onnx") {
        auto onnx = (*client)->ExportOnnx(f->model_id);
        if (!onnx.ok()) return Fail(onnx.status());
        absl::Status s = WriteBytes(f->file_path, *onnx);
        if (!s.ok()) return Fail(s);
        if (!g.json) {
          std::printf("wrote %s (ONNX, %zu bytes)\n", f->file_path.c_str(),
                      onnx->size());
        } else {
          std::printf("{}\n");
        }
        return kExitOk;
      }
      auto file = (*client)->ExportModel(f->model_id);
      if (!file.ok()) return Fail(file.status());
      absl::Status s = WriteModelFile(f->file_path, *file);
      if (!s.ok()) return Fail(s);
      if (!g.json) {
        std::printf("wrote %s (%d parameters tensors, %lld steps)\n",
                    f->file_path.c_str(), file->params_size(),
                    static_cast<long long>(file->trained_steps()));
      } else {
        std::printf("{}\n");
      }
      return kExitOk;
    };
  });

  CLI::App* mimport = models->add_subcommand(
      "import", "Register a model from a file written by export");
  mimport->add_option("FILE", f->file_path, "Model file")->required();
  mimport->add_option("--id", f->model_id,
                      "Model id (default: chosen by the server)");
  mimport->callback([&cli, &g, f] {
    cli.run = [&g, f] {
      v1::ModelFile file;
      absl::Status s = ReadModelFile(f->file_path, &file);
      if (!s.ok()) return Fail(s);
      auto client = Connect(g);
      if (!client.ok()) return Fail(client.status());
      return PrintOr<v1::Model>((*client)->ImportModel(f->model_id, file), g,
                                FormatModel);
    };
  });
}

}  // namespace nnlab::cli

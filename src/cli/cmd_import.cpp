#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/text.h"
#include "core/torch_plugin.h"
#include "models/pt_file.h"

namespace detkit::cli {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

// --list: what the file holds, read without LibTorch.
int list_weights(const std::string& file, bool json) {
  namespace pt = models::ptfile;
  const pt::Checkpoint ck = pt::read_checkpoint(file);
  const pt::FoundWeights found = pt::find_weights(ck);
  if (json) {
    nlohmann::ordered_json j;
    j["file"] = file;
    j["container"] = ck.container;
    j["entry"] = found.entry;
    j["layout"] = found.layout;
    j["module_class"] = found.module_class;
    j["class_names"] = found.class_names;
    j["imgsz"] = found.imgsz;
    j["tensors"] = nlohmann::ordered_json::array();
    for (const auto& t : found.tensors)
      j["tensors"].push_back({{"name", t.name},
                              {"dtype", pt::dtype_name(t.dtype)},
                              {"shape", t.shape},
                              {"crc32", pt::crc32(t.contiguous_bytes())},
                              {"parameter", t.parameter}});
    j["notes"] = found.notes;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  int64_t elements = 0;
  for (const auto& t : found.tensors) elements += t.numel();
  std::cout << file << ": " << ck.container << " torch.save file, " << found.layout
            << (found.entry.empty() ? "" : " in '" + found.entry + "'")
            << (found.module_class.empty() ? "" : " (" + found.module_class + ")") << "\n"
            << "  " << found.tensors.size() << " tensors, " << elements << " elements\n";
  if (!found.class_names.empty()) std::cout << "  classes: " << join(found.class_names, ", ") << "\n";
  if (found.imgsz > 0) std::cout << "  trained at imgsz " << found.imgsz << "\n";
  for (const auto& note : found.notes) std::cout << "  note: " << note << "\n";
  for (const auto& t : found.tensors)
    std::cout << "  " << t.name << "  " << pt::dtype_name(t.dtype) << " " << shape_text(t.shape) << "\n";
  return 0;
}

void print_import(const ImportResult& r) {
  std::cout << "read " << r.file << ": " << r.source_layout << (r.entry.empty() ? "" : ", entry '" + r.entry + "'") << " ("
            << r.container << ")\n"
            << "built " << r.model << " with " << r.classes << " classes (" << join(r.class_names, ", ") << "), imgsz "
            << r.imgsz << "\n"
            << "tensors: " << r.count("loaded") << " loaded, " << r.count("reshaped") << " reshaped, " << r.count("new")
            << " left new, " << r.count("unused") << " in the file unused\n";
  for (const auto& row : r.rows) {
    if (row.status == "loaded") continue;
    std::cout << "  " << row.status << ": " << (row.target.empty() ? "-" : row.target) << " <- "
              << (row.source.empty() ? "-" : row.source);
    if (!row.source_shape.empty() || !row.target_shape.empty())
      std::cout << "  " << shape_text(row.source_shape) << " -> " << shape_text(row.target_shape);
    std::cout << "\n";
  }
  for (const auto& note : r.notes) std::cout << "note: " << note << "\n";
  std::cout << "wrote " << r.out << "\n";
}

nlohmann::ordered_json import_json(const ImportResult& r) {
  nlohmann::ordered_json j;
  j["file"] = r.file;
  j["container"] = r.container;
  j["entry"] = r.entry;
  j["source_layout"] = r.source_layout;
  j["out"] = r.out;
  j["model"] = r.model;
  j["classes"] = r.classes;
  j["class_names"] = r.class_names;
  j["imgsz"] = r.imgsz;
  for (const char* status : {"loaded", "reshaped", "new", "unused"}) {
    auto& list = j[status] = nlohmann::ordered_json::array();
    for (const auto& row : r.rows)
      if (row.status == status) list.push_back(row.status == "unused" ? row.source : row.target);
  }
  j["rows"] = nlohmann::ordered_json::array();
  for (const auto& row : r.rows)
    j["rows"].push_back({{"target", row.target}, {"source", row.source}, {"status", row.status},
                         {"source_shape", row.source_shape}, {"target_shape", row.target_shape}});
  j["notes"] = r.notes;
  return j;
}

}  // namespace

int run_import(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  ImportRequest request;
  std::string names;
  bool list = false, json = false;
  CommonOptions common;
  OptionSet set("detkit import",
                "read weights from a PyTorch checkpoint (state_dict, Ultralytics YOLOv8 .pt, detkit) and write a detkit model");
  set.positionals("FILE", "the weights file (.pt, .pth, .ckpt, or a detkit run directory)", &files, 1, 1);
  set.add("--out", &request.out, "the detkit checkpoint to write (for detect, eval --model and weights=)").alias("-o").value_name("FILE");
  set.add("--list", &list, "list the tensors the file holds (name, dtype, shape) and write nothing; needs no LibTorch");
  set.add("--names", &names, "class names, comma-separated (default: the file's own, else class0, class1, ...)").value_name("A,B,...");
  set.add("--imgsz", &request.imgsz, "image size to record (0: the file's training size, else 640)").range(0, 8192);
  set.add("--json", &json, "print the result as JSON on stdout");
  add_common_options(set, common);
  set.epilog(
      "examples:\n"
      "  detkit import yolov8n.pt --out yolo-n-coco.pt          # Ultralytics checkpoint -> detkit model\n"
      "  detkit import model_state.pth --list                   # what a state_dict holds\n"
      "  detkit train data=data.yaml model=yolo-n weights=yolo-n-coco.pt   # fine-tune from it\n"
      "exit codes: 0 written, 2 bad options, 6 the file cannot be read or mapped");
  set.parse(args);
  if (handled_help(set)) return 0;
  apply_common_options(common);
  request.file = files.front();
  if (list) return list_weights(request.file, json);
  if (request.out.empty())
    throw UsageError({"nothing to do: no --out and no --list", "",
                      "give --out FILE to write a detkit checkpoint, or --list to see what the file holds"});
  if (!names.empty())
    for (const auto& n : split(names, ',')) request.class_names.push_back(trim(n));
  const ImportResult result = torch_plugin().import_weights(request);
  if (json) std::cout << import_json(result).dump(2) << "\n";
  else print_import(result);
  return 0;
}

}  // namespace detkit::cli

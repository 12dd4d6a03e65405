#include "diag/tables.h"

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/text.h"
#include "diag/embedded.h"
#include "diag/version.h"

namespace detkit::diag {

std::string_view embedded_file(const std::string& name) {
  const auto& files = embedded_files();
  const auto it = files.find(name);
  if (it == files.end())
    throw InternalError({cat("data file '", name, "' is not embedded in this build"), "",
                         "add it to the embedded data list in src/CMakeLists.txt and rebuild"});
  return it->second;
}

namespace {

std::string text(const YAML::Node& row, const char* key, const std::string& table) {
  const YAML::Node v = row[key];
  if (!v || !v.IsScalar())
    throw InternalError({cat("compat.yaml: a row of '", table, "' lacks '", key, "'"), "",
                         "fix data/compat.yaml and rebuild"});
  return v.as<std::string>();
}

std::string optional_text(const YAML::Node& row, const char* key) {
  const YAML::Node v = row[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

YAML::Node table(const YAML::Node& root, const char* name) {
  const YAML::Node t = root[name];
  if (!t || !t.IsSequence())
    throw InternalError({cat("compat.yaml has no table '", name, "'"), "", "fix data/compat.yaml and rebuild"});
  return t;
}

}  // namespace

std::vector<std::string> arch_list_to_names(const std::string& list) {
  std::string normalized = list;
  for (char& c : normalized)
    if (c == ' ' || c == ',') c = ';';
  std::vector<std::string> names;
  for (std::string item : split(normalized, ';')) {
    item = trim(item);
    if (item.empty()) continue;
    const bool ptx = ends_with(item, "+PTX");
    const int arch = arch_number(ptx ? item.substr(0, item.size() - 4) : item);
    if (arch < 0) continue;
    names.push_back("sm_" + std::to_string(arch));
    if (ptx) names.push_back("compute_" + std::to_string(arch));
  }
  return names;
}

CompatTables parse_compat_tables(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw InternalError({"compat.yaml is not valid YAML", e.what(), "fix data/compat.yaml and rebuild"});
  }
  CompatTables t;
  for (const auto& r : table(root, "cuda_driver_min"))
    t.cuda_driver_min.push_back({text(r, "cuda", "cuda_driver_min"), text(r, "driver", "cuda_driver_min")});
  for (const auto& r : table(root, "cuda_minor_compat"))
    t.cuda_minor_compat.push_back({version_major(text(r, "major", "cuda_minor_compat")),
                                   text(r, "driver", "cuda_minor_compat")});
  for (const auto& r : table(root, "cuda_arch_range"))
    t.cuda_arch_range.push_back({text(r, "cuda", "cuda_arch_range"), arch_number(text(r, "min", "cuda_arch_range")),
                                 arch_number(text(r, "max", "cuda_arch_range"))});
  for (const auto& r : table(root, "tensorflow_tested"))
    t.tensorflow_tested.push_back({text(r, "tensorflow", "tensorflow_tested"), text(r, "cuda", "tensorflow_tested"),
                                   text(r, "cudnn", "tensorflow_tested")});
  for (const auto& r : table(root, "tensorflow_archs")) {
    CompatTables::TfArchs row{text(r, "cuda", "tensorflow_archs"), {}, r["uncertain"] && r["uncertain"].as<bool>()};
    for (const auto& a : r["archs"]) row.archs.push_back(a.as<std::string>());
    t.tensorflow_archs.push_back(row);
  }
  for (const auto& r : table(root, "torch_cudnn"))
    t.torch_cudnn.push_back({text(r, "torch", "torch_cudnn"), text(r, "cuda", "torch_cudnn"), text(r, "cudnn", "torch_cudnn")});
  for (const auto& r : table(root, "torch_archs"))
    t.torch_archs.push_back({text(r, "cuda", "torch_archs"), optional_text(r, "torch_min"), optional_text(r, "torch_max"),
                             arch_list_to_names(text(r, "archs", "torch_archs"))});
  if (const YAML::Node limits = root["limits"]) {
    if (limits["gpu_busy_fraction"]) t.gpu_busy_fraction = limits["gpu_busy_fraction"].as<double>();
    if (limits["min_disk_free_gib"]) t.min_disk_free_gib = limits["min_disk_free_gib"].as<double>();
    if (limits["min_shm_mib"]) t.min_shm_mib = limits["min_shm_mib"].as<double>();
    if (limits["min_memory_limit_gib"]) t.min_memory_limit_gib = limits["min_memory_limit_gib"].as<double>();
  }
  return t;
}

const CompatTables& compat_tables() {
  static const CompatTables tables = parse_compat_tables(std::string(embedded_file("compat.yaml")));
  return tables;
}

std::string CompatTables::driver_for_cuda(const std::string& cuda) const {
  const std::string mm = version_prefix(cuda, 2);
  for (const auto& row : cuda_driver_min)
    if (compare_versions(row.cuda, mm) == 0) return row.driver;
  return "";
}

std::string CompatTables::minor_compat_driver(int major) const {
  for (const auto& row : cuda_minor_compat)
    if (row.major == major) return row.driver;
  return "";
}

std::optional<CompatTables::ArchRange> CompatTables::arch_range(const std::string& cuda) const {
  std::optional<ArchRange> best;
  for (const auto& row : cuda_arch_range)
    if (compare_versions(row.cuda, cuda) <= 0 && (!best || compare_versions(row.cuda, best->cuda) > 0)) best = row;
  return best;
}

std::optional<CompatTables::TfTested> CompatTables::tensorflow(const std::string& version) const {
  for (const auto& row : tensorflow_tested)
    if (version_matches(version, row.tensorflow)) return row;
  return std::nullopt;
}

std::vector<std::string> CompatTables::tensorflow_wheel_archs(const std::string& cuda) const {
  for (const auto& row : tensorflow_archs)
    if (version_major(row.cuda) == version_major(cuda)) return row.archs;
  return {};
}

std::string CompatTables::torch_wheel_cudnn(const std::string& torch_version, const std::string& cuda) const {
  for (const auto& row : torch_cudnn)
    if (version_matches(torch_version, row.torch) && compare_versions(version_prefix(cuda, 2), row.cuda) == 0)
      return row.cudnn;
  return "";
}

std::vector<std::string> CompatTables::torch_wheel_archs(const std::string& torch_version, const std::string& cuda) const {
  for (const auto& row : torch_archs) {
    if (compare_versions(version_prefix(cuda, 2), row.cuda) != 0) continue;
    const std::string tv = version_prefix(torch_version, 2);
    if (!row.torch_min.empty() && compare_versions(tv, row.torch_min) < 0) continue;
    if (!row.torch_max.empty() && compare_versions(tv, row.torch_max) > 0) continue;
    return row.archs;
  }
  return {};
}

}  // namespace detkit::diag

// Strict, versioned configuration: plain structs with in-class defaults, described to the loader by a
// `void visit(ConfigVisitor&)` member that names each field with a one-line help and its valid range or
// choices. The same description drives YAML loading, `key=value` overrides, validation, the resolved
// config a run writes, and `detkit config --keys`.
//
// Loading rules: defaults < YAML file < overrides (in order). Unknown keys are ConfigError naming the
// nearest valid key; a wrong type or out-of-range value is ConfigError naming the key, the file and line.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/fs.h"

namespace detkit {

struct Range {
  std::optional<double> min;
  std::optional<double> max;
};

class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;
  virtual void field(const char* key, bool& value, const char* help) = 0;
  virtual void field(const char* key, int64_t& value, const char* help, Range range = {}) = 0;
  virtual void field(const char* key, double& value, const char* help, Range range = {}) = 0;
  // `choices` empty means any text.
  virtual void field(const char* key, std::string& value, const char* help, std::vector<std::string> choices = {}) = 0;
  virtual void field(const char* key, std::vector<std::string>& value, const char* help) = 0;
  // A number that may also be written `auto`, meaning the program chooses it before use (`batch: auto`,
  // `lr0: auto`): `automatic` says which. A config written after the choice holds the chosen number.
  virtual void field(const char* key, int64_t& value, bool& automatic, const char* help, Range range = {}) = 0;
  virtual void field(const char* key, double& value, bool& automatic, const char* help, Range range = {}) = 0;

  // A nested section: `section("augment", "...", cfg.augment)` where the member has its own visit().
  template <class Section>
  void section(const char* key, const char* help, Section& s) {
    enter_section(key, help, [&s](ConfigVisitor& v) { s.visit(v); });
  }

 protected:
  virtual void enter_section(const char* key, const char* help, const std::function<void(ConfigVisitor&)>& visit) = 0;
};

// A config root: anything with `void visit(ConfigVisitor&)`. Type-erased so the loader lives in one .cpp.
using ConfigRoot = std::function<void(ConfigVisitor&)>;

template <class Config>
ConfigRoot config_root(Config& config) {
  return [&config](ConfigVisitor& v) { config.visit(v); };
}

// Applies a YAML document (a map at the top) to the config. `source` names it in errors (a path).
void apply_config_yaml(const ConfigRoot& root, const std::string& yaml_text, const std::string& source);
// Reads and applies a YAML file; a missing or unreadable file is a ConfigError naming it.
void apply_config_file(const ConfigRoot& root, const fs::path& path);
// Applies `key=value` or `section.key=value` overrides; values are parsed as YAML scalars or lists.
void apply_config_overrides(const ConfigRoot& root, const std::vector<std::string>& overrides);

// The full configuration as YAML, each key preceded by its help as a comment.
std::string config_to_yaml(const ConfigRoot& root);

struct ConfigKeyInfo {
  std::string key;      // dotted path: "augment.fliplr"
  std::string type;     // "bool", "int", "float", "text", "list"
  std::string value;    // current value as YAML text
  std::string help;
  std::string allowed;  // "coco|yolo|voc" or "[0, 1]"; empty when anything of the type goes
};
std::vector<ConfigKeyInfo> config_keys(const ConfigRoot& root);

}  // namespace detkit

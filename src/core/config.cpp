#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

namespace {

std::string range_text(const Range& r) {
  std::ostringstream out;
  out << "[" << (r.min ? cat(*r.min) : "-inf") << ", " << (r.max ? cat(*r.max) : "inf") << "]";
  return out.str();
}

std::string scalar_text(double v) {
  std::ostringstream out;
  out.precision(10);
  out << v;
  std::string s = out.str();
  if (s.find_first_of(".eE") == std::string::npos && s.find("inf") == std::string::npos && s.find("nan") == std::string::npos) s += ".0";
  return s;
}

// Collects the dotted names of all keys, for suggestions and `config --keys`.
class KeyCollector : public ConfigVisitor {
 public:
  std::vector<ConfigKeyInfo> keys;
  std::string prefix;

  void field(const char* key, bool& v, const char* help) override { add(key, "bool", v ? "true" : "false", help, ""); }
  void field(const char* key, int64_t& v, const char* help, Range r) override {
    add(key, "int", std::to_string(v), help, r.min || r.max ? range_text(r) : "");
  }
  void field(const char* key, double& v, const char* help, Range r) override {
    add(key, "float", scalar_text(v), help, r.min || r.max ? range_text(r) : "");
  }
  void field(const char* key, std::string& v, const char* help, std::vector<std::string> choices) override {
    add(key, "text", v.empty() ? "\"\"" : v, help, join(choices, "|"));
  }
  void field(const char* key, std::vector<std::string>& v, const char* help) override {
    add(key, "list", "[" + join(v, ", ") + "]", help, "");
  }
  void field(const char* key, int64_t& v, bool& automatic, const char* help, Range r) override {
    add(key, "int|auto", automatic ? "auto" : std::to_string(v), help, (r.min || r.max ? range_text(r) + " or " : "") + "auto");
  }
  void field(const char* key, double& v, bool& automatic, const char* help, Range r) override {
    add(key, "float|auto", automatic ? "auto" : scalar_text(v), help, (r.min || r.max ? range_text(r) + " or " : "") + "auto");
  }

 protected:
  void enter_section(const char* key, const char* help, const std::function<void(ConfigVisitor&)>& visit) override {
    const std::string saved = prefix;
    prefix += std::string(key) + ".";
    visit(*this);
    prefix = saved;
  }

 private:
  void add(const char* key, const char* type, std::string value, const char* help, std::string allowed) {
    keys.push_back({prefix + key, type, std::move(value), help, std::move(allowed)});
  }
};

// Where a value came from: "FILE:LINE" for files; the override text alone for key=value overrides.
std::string where_of(const std::string& source, const YAML::Node& node, bool from_file = true) {
  const YAML::Mark mark = node.Mark();
  if (!from_file || mark.line < 0) return source;
  return cat(source, ":", mark.line + 1);
}

// Applies one YAML map to the config, checking every key.
class Loader : public ConfigVisitor {
 public:
  Loader(const YAML::Node& map, std::string source, bool from_file, std::string prefix, std::vector<std::string> all_keys)
      : map_(map), source_(std::move(source)), from_file_(from_file), prefix_(std::move(prefix)),
        all_keys_(std::move(all_keys)) {}

  void field(const char* key, bool& v, const char* help) override {
    if (auto node = take(key)) {
      const auto parsed = node->IsScalar() ? parse_bool(node->Scalar()) : std::nullopt;
      if (!parsed) type_error(key, *node, "true or false");
      v = *parsed;
    }
  }
  void field(const char* key, int64_t& v, const char* help, Range r) override {
    if (auto node = take(key)) {
      const auto parsed = node->IsScalar() ? parse_int(node->Scalar()) : std::nullopt;
      if (!parsed) type_error(key, *node, "an integer");
      check_range(key, *node, static_cast<double>(*parsed), r);
      v = *parsed;
    }
  }
  void field(const char* key, double& v, const char* help, Range r) override {
    if (auto node = take(key)) {
      const auto parsed = node->IsScalar() ? parse_double(node->Scalar()) : std::nullopt;
      if (!parsed) type_error(key, *node, "a number");
      check_range(key, *node, *parsed, r);
      v = *parsed;
    }
  }
  void field(const char* key, std::string& v, const char* help, std::vector<std::string> choices) override {
    if (auto node = take(key)) {
      if (!node->IsScalar()) type_error(key, *node, choices.empty() ? "text" : "one of " + join(choices, ", "));
      const std::string value = node->Scalar();
      if (!choices.empty()) {
        bool ok = false;
        for (const auto& c : choices) ok = ok || c == value;
        if (!ok) {
          const auto near = nearest(value, choices);
          throw ConfigError({cat("config key '", prefix_, key, "' must be one of ", join(choices, ", "), "; got '", value, "'"),
                             "", near ? cat("did you mean '", *near, "'?") : cat("use one of ", join(choices, ", ")),
                             where_of_(*node)});
        }
      }
      v = value;
    }
  }
  void field(const char* key, std::vector<std::string>& v, const char* help) override {
    if (auto node = take(key)) {
      std::vector<std::string> values;
      if (node->IsSequence()) {
        for (const auto& item : *node) {
          if (!item.IsScalar()) type_error(key, *node, "a list of text values");
          values.push_back(item.Scalar());
        }
      } else if (node->IsScalar()) {
        for (const auto& part : split(node->Scalar(), ',')) values.push_back(trim(part));
      } else {
        type_error(key, *node, "a list of text values");
      }
      v = values;
    }
  }
  void field(const char* key, int64_t& v, bool& automatic, const char* help, Range r) override {
    if (auto node = take(key)) {
      if (node->IsScalar() && node->Scalar() == "auto") {
        automatic = true;
        return;
      }
      const auto parsed = node->IsScalar() ? parse_int(node->Scalar()) : std::nullopt;
      if (!parsed) type_error(key, *node, "an integer or auto");
      check_range(key, *node, static_cast<double>(*parsed), r);
      v = *parsed;
      automatic = false;
    }
  }
  void field(const char* key, double& v, bool& automatic, const char* help, Range r) override {
    if (auto node = take(key)) {
      if (node->IsScalar() && node->Scalar() == "auto") {
        automatic = true;
        return;
      }
      const auto parsed = node->IsScalar() ? parse_double(node->Scalar()) : std::nullopt;
      if (!parsed) type_error(key, *node, "a number or auto");
      check_range(key, *node, *parsed, r);
      v = *parsed;
      automatic = false;
    }
  }

  // Every key of the map must have been claimed by a field or a section.
  void check_unknown_keys() const {
    for (const auto& entry : map_) {
      const std::string key = entry.first.as<std::string>();
      if (seen_.count(key)) continue;
      const std::string full = prefix_ + key;
      const auto near = nearest(full, all_keys_);
      throw ConfigError({cat("unknown config key '", full, "'"), "",
                         near ? cat("did you mean '", *near, "'? (list every key with 'detkit config --keys')")
                              : "list every key with 'detkit config --keys'",
                         where_of_(entry.first)});
    }
  }

 protected:
  void enter_section(const char* key, const char* help, const std::function<void(ConfigVisitor&)>& visit) override {
    if (auto node = take(key)) {
      if (node->IsNull()) return;
      if (!node->IsMap()) type_error(key, *node, "a section of key: value lines");
      Loader inner(*node, source_, from_file_, prefix_ + key + ".", all_keys_);
      visit(inner);
      inner.check_unknown_keys();
    }
  }

 private:
  std::optional<YAML::Node> take(const char* key) {
    seen_.insert(key);
    const YAML::Node node = map_[key];
    if (!node.IsDefined()) return std::nullopt;
    return node;
  }

  [[noreturn]] void type_error(const char* key, const YAML::Node& node, const std::string& expected) const {
    const std::string got = node.IsScalar() ? "'" + node.Scalar() + "'" : node.IsSequence() ? "a list" : node.IsMap() ? "a section" : "nothing";
    throw ConfigError({cat("config key '", prefix_, key, "' expects ", expected, ", got ", got), "",
                       from_file_ ? cat("write it as ", prefix_, key, ": <", expected, ">")
                                  : cat("write it as ", prefix_, key, "=<", expected, ">"),
                       where_of_(node)});
  }

  void check_range(const char* key, const YAML::Node& node, double v, const Range& r) const {
    if ((r.min && v < *r.min) || (r.max && v > *r.max))
      throw ConfigError({cat("config key '", prefix_, key, "' is out of range: ", node.Scalar()), "",
                         cat("use a value in ", range_text(r)), where_of_(node)});
  }

  std::string where_of_(const YAML::Node& node) const { return where_of(source_, node, from_file_); }

  YAML::Node map_;
  std::string source_;
  bool from_file_;
  std::string prefix_;
  std::vector<std::string> all_keys_;
  std::set<std::string> seen_;
};

std::vector<std::string> key_names(const ConfigRoot& root) {
  std::vector<std::string> names;
  for (const auto& k : config_keys(root)) names.push_back(k.key);
  return names;
}

void apply_node(const ConfigRoot& root, const YAML::Node& doc, const std::string& source, bool from_file) {
  if (!doc.IsDefined() || doc.IsNull()) return;  // an empty file changes nothing
  if (!doc.IsMap())
    throw ConfigError({"a config file must be a map of key: value lines", "", "see 'detkit config' for an example",
                       where_of(source, doc)});
  Loader loader(doc, source, from_file, "", key_names(root));
  root(loader);
  loader.check_unknown_keys();
}

}  // namespace

void apply_config_yaml(const ConfigRoot& root, const std::string& yaml_text, const std::string& source) {
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError({cat("the config is not valid YAML: ", e.msg), "",
                       "fix the syntax on that line (indentation with spaces, 'key: value')",
                       cat(source, ":", e.mark.line + 1)});
  }
  apply_node(root, doc, source, true);
}

void apply_config_file(const ConfigRoot& root, const fs::path& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const DataError& e) {
    throw ConfigError(e.info());
  }
  apply_config_yaml(root, text, path.string());
}

void apply_config_overrides(const ConfigRoot& root, const std::vector<std::string>& overrides) {
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError({cat("config override '", item, "' is not key=value"), "", "write it as key=value, e.g. epochs=50"});
    const std::string key = trim(item.substr(0, eq));
    const std::string value = item.substr(eq + 1);
    YAML::Node parsed;
    try {
      parsed = YAML::Load(value);
    } catch (const YAML::Exception&) {
      parsed = YAML::Node(value);
    }
    if (!parsed.IsDefined() || parsed.IsNull()) parsed = YAML::Node(value);
    YAML::Node doc(YAML::NodeType::Map);
    const auto parts = split(key, '.');
    // Build the nested map a.b.c: value, walking down with fresh nodes.
    std::vector<YAML::Node> chain{doc};
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node child(YAML::NodeType::Map);
      chain.back()[parts[i]] = child;
      chain.push_back(child);
    }
    chain.back()[parts.back()] = parsed;
    apply_node(root, doc, cat("override '", item, "'"), false);
  }
}

std::string config_to_yaml(const ConfigRoot& root) {
  // Emitted by hand for stable, commented, diff-friendly output: `key: value  # help`.
  struct Writer : ConfigVisitor {
    std::ostringstream out;
    std::string indent;
    void line(const char* key, const std::string& value, const char* help) {
      out << indent << key << ": " << value << "  # " << help << "\n";
    }
    static std::string quoted(const std::string& s) {
      YAML::Emitter e;
      e << YAML::DoubleQuoted << s;
      return e.c_str();
    }
    void field(const char* key, bool& v, const char* help) override { line(key, v ? "true" : "false", help); }
    void field(const char* key, int64_t& v, const char* help, Range) override { line(key, std::to_string(v), help); }
    void field(const char* key, double& v, const char* help, Range) override { line(key, scalar_text(v), help); }
    void field(const char* key, std::string& v, const char* help, std::vector<std::string>) override {
      line(key, quoted(v), help);
    }
    void field(const char* key, std::vector<std::string>& v, const char* help) override {
      std::vector<std::string> q;
      for (const auto& s : v) q.push_back(quoted(s));
      line(key, "[" + join(q, ", ") + "]", help);
    }
    void field(const char* key, int64_t& v, bool& automatic, const char* help, Range) override {
      line(key, automatic ? "auto" : std::to_string(v), help);
    }
    void field(const char* key, double& v, bool& automatic, const char* help, Range) override {
      line(key, automatic ? "auto" : scalar_text(v), help);
    }
    void enter_section(const char* key, const char* help, const std::function<void(ConfigVisitor&)>& visit) override {
      out << indent << key << ":  # " << help << "\n";
      const std::string saved = indent;
      indent += "  ";
      visit(*this);
      indent = saved;
    }
  } writer;
  root(writer);
  return writer.out.str();
}

std::vector<ConfigKeyInfo> config_keys(const ConfigRoot& root) {
  KeyCollector collector;
  root(collector);
  return collector.keys;
}

}  // namespace detkit

#include "diag/explain.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "diag/embedded.h"
#include "diag/probe.h"
#include "diag/rules.h"
#include "diag/version.h"

namespace detkit::diag {

namespace {

// Root-cause order when a log holds several known errors: the driver first (nothing works without it),
// then libraries that fail to load, then code missing for the GPU, then memory, data, distributed
// training. Wrappers ("Function call stack", "CUDA kernel errors might be asynchronously reported") only
// point at an error printed elsewhere.
const std::vector<std::string>& category_order() {
  static const std::vector<std::string> order{"driver", "loading", "arch", "toolchain", "memory",
                                              "data", "distributed", "install", "wrapper", "noise"};
  return order;
}

int category_rank(const std::string& category) {
  const auto& order = category_order();
  const auto it = std::find(order.begin(), order.end(), category);
  return static_cast<int>(it - order.begin());
}

struct CompiledEntry {
  const KnowledgeEntry* entry;
  std::vector<std::regex> patterns;
};

// Compiled once per knowledge base (regex construction dominates explaining a short log).
const std::vector<CompiledEntry>& compiled(const KnowledgeBase& kb) {
  static std::map<const KnowledgeBase*, std::vector<CompiledEntry>> cache;
  auto& slot = cache[&kb];
  if (slot.empty())
    for (const auto& e : kb.entries) {
      CompiledEntry c{&e, {}};
      for (const auto& p : e.patterns) c.patterns.emplace_back(p, std::regex::ECMAScript | std::regex::optimize);
      slot.push_back(std::move(c));
    }
  return slot;
}

std::string str(const YAML::Node& n, const char* key, const std::string& id, bool required = true) {
  const YAML::Node v = n[key];
  if (!v) {
    if (!required) return "";
    throw InternalError({cat("explain.yaml: entry '", id, "' has no '", key, "'"), "", "fix data/explain.yaml and rebuild"});
  }
  return trim(v.as<std::string>());
}

}  // namespace

KnowledgeBase parse_knowledge_base(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw InternalError({"explain.yaml is not valid YAML", e.what(), "fix data/explain.yaml and rebuild"});
  }
  KnowledgeBase kb;
  for (const auto& n : root["entries"]) {
    KnowledgeEntry e;
    e.id = str(n, "id", "?");
    e.source = str(n, "source", e.id);
    e.category = str(n, "category", e.id);
    if (category_rank(e.category) == static_cast<int>(category_order().size()))
      throw InternalError({cat("explain.yaml: entry '", e.id, "' has unknown category '", e.category, "'"), "",
                           "use one of: " + join(category_order(), ", ")});
    e.follow_on = n["follow_on"] && n["follow_on"].as<bool>();
    for (const auto& p : n["patterns"]) {
      e.patterns.push_back(p.as<std::string>());
      try {
        std::regex check(e.patterns.back());
      } catch (const std::regex_error& err) {
        throw InternalError({cat("explain.yaml: entry '", e.id, "' has an invalid pattern: ", e.patterns.back()), err.what(),
                             "fix data/explain.yaml and rebuild"});
      }
    }
    if (e.patterns.empty())
      throw InternalError({cat("explain.yaml: entry '", e.id, "' has no patterns"), "", "fix data/explain.yaml and rebuild"});
    e.title = str(n, "title", e.id);
    e.meaning = str(n, "meaning", e.id, e.category != "noise");
    e.fix = str(n, "fix", e.id, e.category != "noise");
    for (const auto& c : n["causes"]) e.causes.push_back(trim(c.as<std::string>()));
    e.specialize = str(n, "specialize", e.id, false);
    for (const auto& s : n["in_log"]) e.in_log.push_back(trim(s.as<std::string>()));
    for (const auto& other : kb.entries)
      if (other.id == e.id)
        throw InternalError({cat("explain.yaml: entry id '", e.id, "' appears twice"), "", "fix data/explain.yaml and rebuild"});
    kb.entries.push_back(std::move(e));
  }
  return kb;
}

std::string normalise_log_line(const std::string& line) {
  std::string s;
  s.reserve(line.size());
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\x1b' && i + 1 < line.size() && line[i + 1] == '[') {  // ANSI colour: ESC [ params letter
      i += 2;
      while (i < line.size() && !std::isalpha(static_cast<unsigned char>(line[i]))) ++i;
      continue;
    }
    if (c == '`') continue;
    if ((c == '*' || c == '~') && i + 1 < line.size() && line[i + 1] == c) {  // markdown ** and ~~ (not __: __init__)
      ++i;
      continue;
    }
    if (c == '&') {  // the HTML entities that pages put in place of quotes and brackets
      static const std::pair<const char*, char> entities[] = {{"&quot;", '"'}, {"&#39;", '\''}, {"&#x27;", '\''},
                                                              {"&apos;", '\''}, {"&lt;", '<'},   {"&gt;", '>'},
                                                              {"&amp;", '&'},   {"&nbsp;", ' '}};
      bool replaced = false;
      for (const auto& [name, ch] : entities)
        if (line.compare(i, std::strlen(name), name) == 0) {
          s += ch;
          i += std::strlen(name) - 1;
          replaced = true;
          break;
        }
      if (replaced) continue;
    }
    if (static_cast<unsigned char>(c) == 0xE2 && i + 2 < line.size() && static_cast<unsigned char>(line[i + 1]) == 0x80) {
      const auto third = static_cast<unsigned char>(line[i + 2]);  // U+2018..U+201D quotes, U+2013/4 dashes
      const char plain = third == 0x98 || third == 0x99 ? '\'' : third == 0x9C || third == 0x9D ? '"'
                         : third == 0x93 || third == 0x94 ? '-' : '\0';
      if (plain) {
        s += plain;
        i += 2;
        continue;
      }
    }
    if (static_cast<unsigned char>(c) == 0xC2 && i + 1 < line.size() && static_cast<unsigned char>(line[i + 1]) == 0xA0) {
      s += ' ';  // no-break space
      ++i;
      continue;
    }
    s += (c == '\t' || c == '\r') ? ' ' : c;
  }
  // Quote markers at the start ("> > text"), then white space runs.
  std::size_t start = 0;
  while (start < s.size() && (s[start] == ' ' || s[start] == '>')) ++start;
  std::string out;
  out.reserve(s.size() - start);
  for (std::size_t i = start; i < s.size(); ++i) {
    if (s[i] == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += s[i];
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

const KnowledgeBase& knowledge_base() {
  static const KnowledgeBase kb = parse_knowledge_base(std::string(embedded_file("explain.yaml")));
  return kb;
}

namespace {

std::string describe_lib(const LibraryFile& lib) {
  return cat(lib.soname, lib.version.empty() ? "" : " (" + lib.version + ")", " in ", lib.dir,
             lib.on_loader_path ? "" : " (not on the loader path)");
}

// A missing shared library: what of its family is installed, and where.
std::string specialize_soname(const std::string& soname, const Facts& f) {
  const auto [family, version] = classify_library_name(soname);
  if (family.empty()) return "";
  std::vector<const LibraryFile*> same, other;
  for (const auto& lib : f.libraries) {
    if (lib.family != family) continue;
    (lib.soname == soname ? same : other).push_back(&lib);
  }
  for (auto* lib : same)
    if (lib->on_loader_path)
      return cat(soname, " is on this machine's loader path (", describe_lib(*lib), "): the failing program runs with "
                 "another environment (container, LD_LIBRARY_PATH) or an RPATH that skips it; compare its environment "
                 "with 'detkit doctor'");
  if (!same.empty())
    return cat(soname, " is installed but not on the loader path: ", describe_lib(*same.front()),
               "; export LD_LIBRARY_PATH=", same.front()->dir, ":$LD_LIBRARY_PATH");
  const std::string what = family == "cudnn" ? "cuDNN" : family == "cudart" ? "the CUDA runtime" : family;
  if (other.empty()) return cat("no ", what, " library is installed on this machine (", soname, " is needed)");
  std::vector<std::string> have;
  for (auto* lib : other) have.push_back(describe_lib(*lib));
  std::string advice;
  if (family == "cudnn")
    advice = cat("; install cuDNN ", version_major(version), " (pip install nvidia-cudnn-cu12==", version_major(version),
                 ".*, or the system package for your CUDA) or use a build made for the cuDNN you have");
  else if (family == "cudart")
    advice = cat("; install the CUDA ", version_prefix(version, version_major(version) >= 12 ? 1 : 2),
                 " runtime, or use a build made for the CUDA you have");
  return cat(soname, " is missing while ", join(have, ", "), " is installed", advice);
}

std::string specialize_driver(const Facts& f) {
  const std::string v = driver_version(f);
  if (v.empty()) return "this machine has no NVIDIA driver loaded: install one, or run on the CPU";
  return cat("this machine's NVIDIA driver is ", v,
             f.driver.cuda_driver_api > 0 ? cat(" (supports CUDA up to ", cuda_version_from_int(f.driver.cuda_driver_api), ")") : "",
             "; 'detkit doctor' compares it with each installed framework's CUDA");
}

std::string specialize_arch(const Facts& f) {
  if (f.gpus.empty()) return "";
  std::vector<std::string> parts;
  for (const auto& g : f.gpus) {
    const int cc = g.cc_major * 10 + g.cc_minor;
    std::string s = cat("GPU ", g.index, " ", g.name, " is sm_", cc);
    std::vector<std::string> missing;
    if (f.detkit_torch.loaded && !f.detkit_torch.archs.empty() && !arch_covers(f.detkit_torch.archs, cc))
      missing.push_back("detkit's LibTorch");
    for (const auto& fw : f.frameworks)
      if (fw.cuda_build && !fw.archs.empty() && !arch_covers(fw.archs, cc)) missing.push_back(fw.package + " " + fw.version);
    if (!missing.empty()) s += "; not covered by " + join(missing, ", ");
    parts.push_back(s);
  }
  return join(parts, "; ");
}

std::string specialize_memory(const Facts& f) {
  if (f.gpus.empty()) return "";
  std::vector<std::string> parts;
  for (const auto& g : f.gpus) {
    std::string s = cat("GPU ", g.index, " has ", format_bytes(g.memory_free), " free of ", format_bytes(g.memory_total));
    if (!g.processes.empty()) {
      std::vector<std::string> procs;
      for (const auto& p : g.processes) procs.push_back(cat("pid ", p.pid, p.name.empty() ? "" : " " + p.name, " ", format_bytes(p.used_bytes)));
      s += " (held by " + join(procs, ", ") + ")";
    }
    parts.push_back(s);
  }
  return "now: " + join(parts, "; ");
}

std::string specialize_devices(const Facts& f) {
  const std::string* v = f.env_value("CUDA_VISIBLE_DEVICES");
  std::string s = f.gpus.empty() ? std::string("NVML sees no GPU on this machine")
                                 : cat("NVML sees ", f.gpus.size(), " GPU(s) on this machine");
  if (v) s += cat("; CUDA_VISIBLE_DEVICES='", *v, "' leaves ", visible_gpu_count(*v, static_cast<int>(f.gpus.size())), " visible");
  if (!f.driver.kernel_module) s += "; no NVIDIA kernel driver is loaded";
  return s;
}

}  // namespace

namespace {

// Reads one normalised line into `f`; the first value of each kind wins.
void read_log_facts(const std::string& line, LogFacts& f) {
  static const std::regex smi_header(R"(NVIDIA-SMI [0-9.]+ .*Driver Version: ([0-9.]+)(?: .*CUDA Version: ([0-9.]+))?)");
  static const std::regex devices(R"(CUDA_VISIBLE_DEVICES['"\]]* ?[=:] ?['"]?([0-9A-Za-z,-]*))");
  static const std::regex framework(R"((?:^|[^0-9.])([0-9]+\.[0-9]+(?:\.[0-9]+)?\+(?:cpu|cu[0-9]{2,3}|rocm[0-9.]+))\b)");
  std::smatch m;
  if (f.driver.empty() && std::regex_search(line, m, smi_header)) {
    f.driver = m[1].str();
    if (m[2].matched) f.driver_cuda = m[2].str();
  }
  if (!f.devices_shown && std::regex_search(line, m, devices)) {
    f.devices_shown = true;
    f.devices = m[1].str();
  }
  if (f.framework.empty() && std::regex_search(line, m, framework)) f.framework = m[1].str();
}

// "a || b": the first of a and b whose values are all in the log.
std::vector<std::string> split_alternatives(const std::string& sentence) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t bar; (bar = sentence.find(" || ", start)) != std::string::npos; start = bar + 4)
    out.push_back(sentence.substr(start, bar - start));
  out.push_back(sentence.substr(start));
  return out;
}

// One in_log sentence with its values, or "" when a value it names is not in the log.
std::string fill_in_log(const std::string& sentence, const std::vector<std::string>& groups, const LogFacts& f) {
  std::string out;
  for (std::size_t i = 0; i < sentence.size(); ++i) {
    if (sentence[i] != '{') {
      out += sentence[i];
      continue;
    }
    const std::size_t close = sentence.find('}', i);
    if (close == std::string::npos) return "";
    const std::string name = sentence.substr(i + 1, close - i - 1);
    i = close;
    std::string value;
    if (name == "log.driver") value = f.driver;
    else if (name == "log.driver_cuda") value = f.driver_cuda;
    else if (name == "log.devices") value = f.devices_shown ? (f.devices.empty() ? "(empty)" : f.devices) : "";
    else if (name == "log.framework") value = f.framework;
    else {
      const std::size_t bar = name.find('|');
      const auto index = parse_int(name.substr(0, bar));
      if (!index || *index < 1 || static_cast<std::size_t>(*index) > groups.size()) return "";
      value = groups[static_cast<std::size_t>(*index - 1)];
      const std::string filter = bar == std::string::npos ? "" : name.substr(bar + 1);
      if (!value.empty() && filter == "cuda") {  // cudaDriverGetVersion's 1000 * major + 10 * minor
        const auto number = parse_int(value);
        value = number && *number >= 1000 ? cuda_version_from_int(static_cast<int>(*number)) : "";
      } else if (!value.empty() && filter == "cudnn" && value.find(',') != std::string::npos) {
        std::vector<std::string> parts = split(value, ',');  // PyTorch's tuple: (8, 7, 0)
        for (auto& part : parts) part = trim(part);
        value = join(parts, ".");
      } else if (!value.empty() && filter == "cudnn" && value.find('.') == std::string::npos) {
        // CUDNN_VERSION before cuDNN 9: 1000 * major + 100 * minor + patch (7201 is 7.2.1)
        const auto number = parse_int(value);
        value = number && *number >= 1000 ? cat(*number / 1000, ".", *number % 1000 / 100, ".", *number % 100) : "";
      }
    }
    if (value.empty()) return "";
    out += value;
  }
  return out;
}

}  // namespace

ExplainResult explain_log(const std::string& log, const KnowledgeBase& kb, const Facts* facts) {
  ExplainResult result;
  const auto& entries = compiled(kb);
  std::map<std::string, Explanation> found;
  std::vector<std::string> order;
  std::istringstream in(log);
  std::string raw;
  while (std::getline(in, raw)) {
    ++result.lines;
    if (raw.size() > 4000) raw.resize(4000);  // a binary blob or a giant tensor print is not a message
    const std::string line = normalise_log_line(raw);
    read_log_facts(line, result.log_facts);
    for (const auto& c : entries)
      for (const auto& re : c.patterns) {
        std::smatch m;
        if (!std::regex_search(line, m, re)) continue;
        auto [it, fresh] = found.try_emplace(c.entry->id);
        Explanation& x = it->second;
        if (fresh) {
          x.entry = c.entry;
          x.line_number = result.lines;
          x.line = line;
          for (std::size_t g = 1; g < m.size(); ++g) x.groups.push_back(m[g].matched ? m[g].str() : "");
          if (!x.groups.empty()) x.captured = x.groups.front();
          order.push_back(c.entry->id);
        }
        ++x.occurrences;
        break;
      }
  }
  const LogFacts& lf = result.log_facts;
  for (const auto& id : order) {
    Explanation x = found[id];
    if (x.entry->category == "noise") {
      result.noise.push_back(x);
      continue;
    }
    std::vector<std::string> said;
    for (const auto& sentence : x.entry->in_log)
      for (const auto& alternative : split_alternatives(sentence))
        if (std::string s = fill_in_log(alternative, x.groups, lf); !s.empty()) {
          said.push_back(s);
          break;
        }
    x.in_the_log = join(said, "; ");
    // The doctor's facts are about the machine running detkit. Where the log shows a GPU driver and this
    // machine has none, the log came from elsewhere and the facts would only contradict it.
    const bool log_from_elsewhere = !lf.driver.empty() && facts && driver_version(*facts).empty();
    if (facts && !log_from_elsewhere) {
      const std::string& kind = x.entry->specialize;
      if (kind == "soname" && !x.captured.empty()) x.on_this_machine = specialize_soname(x.captured, *facts);
      else if (kind == "driver") x.on_this_machine = specialize_driver(*facts);
      else if (kind == "arch") x.on_this_machine = specialize_arch(*facts);
      else if (kind == "memory") x.on_this_machine = specialize_memory(*facts);
      else if (kind == "devices") x.on_this_machine = specialize_devices(*facts);
    }
    result.causes.push_back(x);
  }
  std::stable_sort(result.causes.begin(), result.causes.end(), [](const Explanation& a, const Explanation& b) {
    const int ra = category_rank(a.entry->category), rb = category_rank(b.entry->category);
    if (ra != rb) return ra < rb;
    if (a.entry->follow_on != b.entry->follow_on) return !a.entry->follow_on;
    return a.line_number < b.line_number;
  });
  return result;
}

std::string render_explanation(const ExplainResult& r, const std::string& source) {
  std::ostringstream out;
  if (!r.recognised()) {
    out << "no known error in " << source << " (" << r.lines << " lines";
    if (!r.noise.empty()) out << "; " << r.noise.size() << " known harmless message(s) skipped";
    out << ").\nIf the run failed, the cause may be outside the knowledge base: run 'detkit doctor' to check the "
           "driver, CUDA libraries and frameworks on this machine.\n";
    return out.str();
  }
  out << source << ": " << r.causes.size() << " known error(s) in " << r.lines << " lines";
  if (!r.noise.empty()) out << " (" << r.noise.size() << " known harmless message(s) skipped)";
  out << "\n";
  if (r.log_facts.any()) {
    const LogFacts& f = r.log_facts;
    std::vector<std::string> shows;
    if (!f.driver.empty())
      shows.push_back(cat("NVIDIA driver ", f.driver, f.driver_cuda.empty() ? "" : " (CUDA up to " + f.driver_cuda + ")",
                          " in nvidia-smi's output"));
    if (f.devices_shown) shows.push_back(cat("CUDA_VISIBLE_DEVICES=", f.devices.empty() ? "(empty: no GPU visible)" : f.devices));
    if (!f.framework.empty())
      shows.push_back(cat("a framework version ", f.framework,
                          f.framework.find("+cpu") != std::string::npos ? " (a CPU-only build)" : ""));
    out << "the log shows: " << join(shows, "; ") << "\n";
  }
  for (std::size_t i = 0; i < r.causes.size(); ++i) {
    const auto& x = r.causes[i];
    const auto& e = *x.entry;
    out << "\n" << (i == 0 ? "root cause" : cat("also (", i + 1, ")")) << ": " << e.title << "  [" << e.id << ", " << e.source << "]\n";
    out << "  line " << x.line_number << ": " << x.line << "\n";
    if (x.occurrences > 1) out << "  (" << x.occurrences << " lines like it)\n";
    out << "  what it means: " << e.meaning << "\n";
    if (!e.causes.empty()) {
      out << "  likely causes, most likely first:\n";
      for (std::size_t c = 0; c < e.causes.size(); ++c) out << "    " << c + 1 << ". " << e.causes[c] << "\n";
    }
    out << "  fix: " << e.fix << "\n";
    if (!x.in_the_log.empty()) out << "  in this log: " << x.in_the_log << "\n";
    if (!x.on_this_machine.empty())
      out << "  on the machine running detkit (which may not be the one that wrote the log): " << x.on_this_machine << "\n";
  }
  return out.str();
}

std::string explanation_to_json(const ExplainResult& r, const std::string& source) {
  using J = nlohmann::ordered_json;
  J causes = J::array(), noise = J::array();
  for (const auto& x : r.causes)
    causes.push_back({{"id", x.entry->id}, {"title", x.entry->title}, {"source", x.entry->source},
                      {"category", x.entry->category}, {"line_number", x.line_number}, {"line", x.line},
                      {"occurrences", x.occurrences}, {"meaning", x.entry->meaning}, {"causes", x.entry->causes},
                      {"fix", x.entry->fix}, {"in_the_log", x.in_the_log}, {"on_this_machine", x.on_this_machine}});
  for (const auto& x : r.noise)
    noise.push_back({{"id", x.entry->id}, {"line_number", x.line_number}, {"occurrences", x.occurrences}});
  J root;
  root["source"] = source;
  root["lines"] = r.lines;
  root["recognised"] = r.recognised();
  root["log_facts"] = {{"driver", r.log_facts.driver}, {"driver_cuda", r.log_facts.driver_cuda},
                       {"cuda_visible_devices", r.log_facts.devices_shown ? J(r.log_facts.devices) : J(nullptr)},
                       {"framework", r.log_facts.framework}};
  root["causes"] = causes;
  root["noise"] = noise;
  return root.dump(2) + "\n";
}

}  // namespace detkit::diag

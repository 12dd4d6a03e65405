// `detkit explain`: finding the root-cause lines of a TensorFlow, PyTorch, detkit, CUDA, cuDNN or NCCL log
// and explaining them. The knowledge base is data (data/explain.yaml, embedded in the binary): each entry
// has regular expressions, a category, what the message means, its likely causes (most likely first)
// and the fix. With doctor facts, the fix is made specific to this machine (which cuDNN is installed
// where, which driver is loaded, which GPUs are full).
#pragma once

#include <string>
#include <vector>

#include "diag/facts.h"

namespace detkit::diag {

struct KnowledgeEntry {
  std::string id;        // stable, e.g. "cudnn-library-missing"
  std::string source;    // who prints it: TensorFlow, PyTorch, CUDA, NCCL, detkit, ...
  std::string category;  // driver, loading, arch, toolchain, memory, data, distributed, install, wrapper, noise
  bool follow_on = false;  // a consequence of another error: ranked after other matches of its category
  std::vector<std::string> patterns;  // ECMAScript regexes, matched against one line; group 1 feeds `specialize`
  std::string title, meaning, fix;
  std::vector<std::string> causes;  // most likely first
  std::string specialize;  // "", soname, driver, arch, memory, devices: which facts refine the fix
};

struct KnowledgeBase {
  std::vector<KnowledgeEntry> entries;
};

// Parses explain.yaml text. Throws InternalError naming the entry when one is malformed or a pattern is
// not a valid regular expression.
KnowledgeBase parse_knowledge_base(const std::string& yaml_text);

// The knowledge base embedded in this build, parsed once.
const KnowledgeBase& knowledge_base();

struct Explanation {
  const KnowledgeEntry* entry = nullptr;
  int line_number = 0;     // 1-based, first occurrence
  std::string line;        // that line, trimmed
  std::string captured;    // group 1 of the pattern, "" when none
  int occurrences = 0;     // lines that matched this entry
  std::string on_this_machine;  // the fix made specific by doctor facts; "" when facts add nothing
};

struct ExplainResult {
  std::vector<Explanation> causes;  // root cause first (see rank order in explain.cpp), noise excluded
  std::vector<Explanation> noise;   // recognised harmless lines
  int lines = 0;
  bool recognised() const { return !causes.empty(); }
};

// Explains `log`. `facts` may be null (no machine-specific advice). Pure apart from reading its inputs.
ExplainResult explain_log(const std::string& log, const KnowledgeBase& kb, const Facts* facts);

// The readable explanation, or for an unrecognised log the statement that nothing is known and the
// suggestion to run `detkit doctor`. `source` names the input ("train.log", "stdin").
std::string render_explanation(const ExplainResult& result, const std::string& source);

// {"source", "lines", "recognised", "causes": [{id, title, category, line_number, line, occurrences,
// meaning, causes, fix, on_this_machine}], "noise": [{id, line_number, occurrences}]}.
std::string explanation_to_json(const ExplainResult& result, const std::string& source);

}  // namespace detkit::diag

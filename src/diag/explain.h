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
  // Sentences that repeat what the log itself says, each shown when every value it names is there:
  // {1}, {2}... a pattern group; {1|cuda} a group read as a CUDA version number (9000 -> 9.0); {1|cudnn}
  // a packed cuDNN version (7201 -> 7.2.1, a dotted one as it is);
  // {log.driver}, {log.driver_cuda}, {log.devices}, {log.framework}: the LogFacts below. "a || b" gives
  // the first alternative whose values are all there.
  std::vector<std::string> in_log;
};

struct KnowledgeBase {
  std::vector<KnowledgeEntry> entries;
};

// Parses explain.yaml text. Throws InternalError naming the entry when one is malformed or a pattern is
// not a valid regular expression.
KnowledgeBase parse_knowledge_base(const std::string& yaml_text);

// The knowledge base embedded in this build, parsed once.
const KnowledgeBase& knowledge_base();

// A pasted log line as the patterns see it: terminal colours, markdown emphasis and code marks (** __ `),
// quote markers (>), HTML entities and typographic quotes removed, runs of white space made one space, and
// trimmed. Logs copied from issue threads and chat carry all of these around the framework's own text.
std::string normalise_log_line(const std::string& line);

// What the log shows about the machine that wrote it, read from any line; "" where it does not say. These
// describe the log's machine, which may not be the one running detkit.
struct LogFacts {
  std::string driver;        // NVIDIA driver version from nvidia-smi's header ("535.104.05")
  std::string driver_cuda;   // the newest CUDA that driver supports, from the same header ("12.2")
  std::string devices;       // the CUDA_VISIBLE_DEVICES value the log sets or prints ("1", "" = not shown)
  bool devices_shown = false;
  std::string framework;     // a framework version with its build tag ("2.1.0+cpu", "1.13.1+cu117")
  bool any() const { return !driver.empty() || devices_shown || !framework.empty(); }
};

struct Explanation {
  const KnowledgeEntry* entry = nullptr;
  int line_number = 0;     // 1-based, first occurrence
  std::string line;        // that line, normalised (normalise_log_line)
  std::string captured;    // group 1 of the pattern, "" when none
  std::vector<std::string> groups;  // every group of the pattern ("" where one did not take part)
  int occurrences = 0;     // lines that matched this entry
  std::string in_the_log;  // the entry's in_log sentences filled from the log; "" when none applies
  std::string on_this_machine;  // the fix made specific by the doctor's facts about the machine running
                                // detkit; "" when they add nothing or the log shows they do not apply
};

struct ExplainResult {
  std::vector<Explanation> causes;  // root cause first (see rank order in explain.cpp), noise excluded
  std::vector<Explanation> noise;   // recognised harmless lines
  LogFacts log_facts;
  int lines = 0;
  bool recognised() const { return !causes.empty(); }
};

// Explains `log`. `facts` may be null (no machine-specific advice). Pure apart from reading its inputs.
ExplainResult explain_log(const std::string& log, const KnowledgeBase& kb, const Facts* facts);

// The readable explanation, or for an unrecognised log the statement that nothing is known and the
// suggestion to run `detkit doctor`. `source` names the input ("train.log", "stdin").
std::string render_explanation(const ExplainResult& result, const std::string& source);

// {"source", "lines", "recognised", "log_facts": {driver, driver_cuda, cuda_visible_devices, framework},
// "causes": [{id, title, category, line_number, line, occurrences, meaning, causes, fix, in_the_log,
// on_this_machine}], "noise": [{id, line_number, occurrences}]}.
std::string explanation_to_json(const ExplainResult& result, const std::string& source);

}  // namespace detkit::diag

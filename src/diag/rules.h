// The doctor's judgement: a pure function from Facts (diag/facts.h) and the compatibility tables
// (diag/tables.h) to findings. No I/O: every rule is tested with constructed facts.
#pragma once

#include <string>
#include <vector>

#include "diag/facts.h"
#include "diag/tables.h"

namespace detkit::diag {

enum class Severity { info = 0, warning = 1, error = 2 };
const char* to_string(Severity severity);

// One thing the doctor has to say. `id` is stable (scripts and tests key on it, e.g. "driver.too-old");
// `title` one line; `detail` the facts behind it; `remedy` the concrete action (which version to install,
// which variable to set). Info findings may have an empty remedy.
struct Finding {
  std::string id;
  Severity severity = Severity::info;
  std::string title;
  std::string detail;
  std::string remedy;
};

// Every rule applied to `facts`, errors first, then warnings, then infos (each group in rule order).
// Never throws for missing facts: a rule without the facts it needs says nothing.
std::vector<Finding> evaluate_rules(const Facts& facts, const CompatTables& tables);

// The driver version the facts agree on: the kernel module's, else NVML's, else libcuda's file name.
// "" when there is no driver.
std::string driver_version(const Facts& facts);

// Whether a GPU of compute capability `cc` (86 for 8.6) can run code built for `archs` (sm_XY /
// compute_XY): a cubin of the same major and a minor <= the GPU's, or PTX of an arch <= the GPU's
// (JIT-compiled by the driver). `via_ptx` is set when only PTX covers it.
bool arch_covers(const std::vector<std::string>& archs, int cc, bool* via_ptx = nullptr);

// The CUDA devices CUDA_VISIBLE_DEVICES leaves visible out of `gpu_count`: CUDA reads the list up to the
// first invalid entry. Empty value, "-1" or "none" hide everything. UUID entries (GPU-..., MIG-...) count
// as valid. `ignored` receives the first entry CUDA stops at ("" when none).
int visible_gpu_count(const std::string& value, int gpu_count, std::string* ignored = nullptr);

}  // namespace detkit::diag

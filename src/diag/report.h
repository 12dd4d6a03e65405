// Rendering the doctor's facts and findings: the readable report (facts, then findings with fixes), its
// JSON form (`--json FILE`), and the short form a training run logs at its start and saves in its run
// directory.
#pragma once

#include <string>
#include <vector>

#include "diag/facts.h"
#include "diag/rules.h"

namespace detkit::diag {

// The full report: a "facts" section (system, driver and GPUs, CUDA libraries, environment, LibTorch,
// Python frameworks, smoke results), then every finding with its detail and fix, then a one-line verdict.
std::string render_report(const Facts& facts, const std::vector<Finding>& findings);

// {"facts": {...}, "findings": [{id, severity, title, detail, remedy}], "errors": N, "warnings": N}.
std::string report_to_json(const Facts& facts, const std::vector<Finding>& findings);

// A few lines: driver and GPUs (or "no NVIDIA driver: CPU"), detkit's LibTorch, then each error and
// warning as "severity id: title". For the start of a training run and its run directory.
std::string short_report(const Facts& facts, const std::vector<Finding>& findings);

// Number of findings of `severity`.
int count_findings(const std::vector<Finding>& findings, Severity severity);

}  // namespace detkit::diag

// `detkit report`: a self-contained HTML page describing a training run or an evaluation.
//
// Needs: a training run directory (what `detkit train` writes: results.csv, metrics.json, events.json,
// val/..., data-check.json, environment.txt, config.yaml) or the output directory of `detkit eval --model`
// (metrics.json, curves.json), or of `detkit audit` (audit.json, crops/; a run directory may hold one in
// audit/). Every file is optional; see report/run_files.h for the list and report/html.h for what the
// page shows.
//
// Guarantees: the inputs are never modified; the page is written atomically (core/fs.h write_file_atomic),
// so a reader sees the previous page or the new one; it opens offline (no script or external resource).
//
// Throws: DataError naming the file when an input is damaged (invalid JSON / CSV / YAML, a missing key or
// column, a samples image or an audit crop that is not a JPEG) or when `dir` is missing or holds none of
// the inputs; RunError when the page cannot be written.
#pragma once

#include <filesystem>
#include <string>

namespace detkit::report {

namespace fs = std::filesystem;

// The page's HTML text for `dir`.
std::string render_report(const fs::path& dir);

// Writes the page to `out` (default: DIR/report.html) atomically and returns the path written.
fs::path write_report(const fs::path& dir, const fs::path& out = {});

}  // namespace detkit::report

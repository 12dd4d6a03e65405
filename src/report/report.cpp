#include "report/report.h"

#include "core/fs.h"
#include "report/html.h"
#include "report/run_files.h"

namespace detkit::report {

std::string render_report(const fs::path& dir) { return render_html(read_run_files(dir)); }

fs::path write_report(const fs::path& dir, const fs::path& out) {
  const fs::path target = out.empty() ? dir / "report.html" : out;
  const std::string page = render_report(dir);
  write_file_atomic(target, page);
  return target;
}

}  // namespace detkit::report

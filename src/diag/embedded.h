// The data files of data/ (compatibility tables, the error knowledge base), embedded into the binary at
// build time by src/diag/embed.cmake, so `detkit doctor` and `explain` need no install path.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace detkit::diag {

// File name (e.g. "compat.yaml") -> its bytes.
const std::map<std::string, std::string_view>& embedded_files();

// The bytes of one embedded file. Throws InternalError when it was not embedded (a build bug).
std::string_view embedded_file(const std::string& name);

}  // namespace detkit::diag

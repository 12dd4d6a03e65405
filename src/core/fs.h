// File-system helpers with the guarantees detkit promises: outputs are written atomically (a reader sees
// the old file or the new one, never a torn one) and inputs are never modified.
#pragma once

#include <filesystem>
#include <string>

namespace detkit {

namespace fs = std::filesystem;

// Writes `content` to `path` atomically: a temporary file in the same directory, fsync, rename over
// `path`, fsync of the directory. Creates missing parent directories. Throws RunError (with the OS reason)
// when any step fails; the temporary file is removed on failure.
void write_file_atomic(const fs::path& path, const std::string& content);

// Reads a whole file. Throws DataError naming the file when it is missing or unreadable.
std::string read_file(const fs::path& path);

// Creates `dir` and its parents. Throws RunError when that fails (with the OS reason).
void ensure_directory(const fs::path& dir);

// True when `dir` does not exist or is an empty directory.
bool is_missing_or_empty_directory(const fs::path& dir);

// Directory of the running executable (from /proc/self/exe); empty when unknown.
fs::path executable_directory();

}  // namespace detkit

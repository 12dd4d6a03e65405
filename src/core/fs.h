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
// PARENT/NAME, else PARENT/NAME2, NAME3, ...: the first that does not exist or is empty (run directories).
fs::path fresh_numbered_directory(const fs::path& parent, const std::string& name);

// A directory written as a whole or not at all: files go into a hidden sibling (".NAME.partial-PID")
// that commit() renames to `target`. Destroying it uncommitted (an error, Ctrl-C) removes the sibling,
// so a failed run never leaves a half-written output. `target` must not exist or be an empty directory:
// the constructor throws UsageError otherwise (existing data is never overwritten).
class StagedDirectory {
 public:
  explicit StagedDirectory(const fs::path& target);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  const fs::path& path() const { return staging_; }  // write here
  void commit();                                      // move into place; throws RunError on failure

 private:
  fs::path target_, staging_;
  bool committed_ = false;
};

// The running executable (from /proc/self/exe) and its directory; empty when unknown.
fs::path executable_path();
fs::path executable_directory();

}  // namespace detkit

#include "core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/text.h"

namespace detkit {

namespace {
std::string os_reason() { return std::strerror(errno); }

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems do not allow opening directories
  ::fsync(fd);
  ::close(fd);
}
}  // namespace

void ensure_directory(const fs::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw RunError({"cannot create directory", ec ? ec.message() : "a file with that name exists",
                    "choose an output location you can write to", dir.string()});
}

void write_file_atomic(const fs::path& path, const std::string& content) {
  const fs::path parent = path.parent_path();
  ensure_directory(parent);
  std::random_device entropy;
  const fs::path tmp = path.string() + cat(".tmp-", ::getpid(), "-", entropy() % 1000000);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw RunError({"cannot write file", os_reason(), "check that the directory is writable and the disk not full",
                    path.string()});
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = os_reason();
      ::close(fd);
      ::unlink(tmp.c_str());
      throw RunError({"cannot write file", reason, "free disk space or choose another output location", path.string()});
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string reason = os_reason();
    ::unlink(tmp.c_str());
    throw RunError({"cannot flush file to disk", reason, "free disk space or choose another output location",
                    path.string()});
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = os_reason();
    ::unlink(tmp.c_str());
    throw RunError({"cannot move finished file into place", reason, "check permissions of the output directory",
                    path.string()});
  }
  fsync_directory(parent);
}

std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw DataError({"file not found", "", "check the path (relative paths are taken from the current directory)",
                     path.string()});
  if (fs::is_directory(path, ec))
    throw DataError({"expected a file but found a directory", "", "pass the path of the file itself", path.string()});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError({"cannot open file", os_reason(), "check the file's permissions", path.string()});
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw DataError({"cannot read file", os_reason(), "check the file and the disk", path.string()});
  return buffer.str();
}

fs::path fresh_numbered_directory(const fs::path& parent, const std::string& name) {
  for (int n = 1;; ++n) {
    const fs::path dir = parent / (n == 1 ? name : name + std::to_string(n));
    if (is_missing_or_empty_directory(dir)) return dir;
  }
}

bool is_missing_or_empty_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}

StagedDirectory::StagedDirectory(const fs::path& target) : target_(target) {
  if (!is_missing_or_empty_directory(target))
    throw UsageError({"the output directory exists and is not empty", "detkit never overwrites existing data",
                      "choose a new directory, or remove this one yourself first", target.string()});
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  ensure_directory(parent);
  staging_ = parent / cat(".", target.filename().string(), ".partial-", ::getpid());
  std::error_code ec;
  fs::remove_all(staging_, ec);
  ensure_directory(staging_);
}

StagedDirectory::~StagedDirectory() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void StagedDirectory::commit() {
  std::error_code ec;
  if (fs::exists(target_, ec)) fs::remove(target_, ec);  // known to be empty
  fs::rename(staging_, target_, ec);
  if (ec)
    throw RunError({"cannot move the finished output into place", ec.message(), "check permissions of the output's parent",
                    target_.string()});
  fsync_directory(target_.parent_path());
  committed_ = true;
}

fs::path executable_path() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe;
}

fs::path executable_directory() { return executable_path().parent_path(); }

}  // namespace detkit

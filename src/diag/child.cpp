#include "diag/child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "core/text.h"

extern char** environ;

namespace detkit::diag {

ChildResult run_child(const std::vector<std::string>& argv, double timeout_seconds,
                      const std::vector<std::pair<std::string, std::string>>& extra_env) {
  ChildResult r;
  if (argv.empty()) {
    r.start_error = "no program";
    return r;
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    r.start_error = std::strerror(errno);
    return r;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    r.start_error = std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return r;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    bool overridden = false;
    for (const auto& [k, v] : extra_env) overridden = overridden || starts_with(kv, k + "=");
    if (!overridden) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : extra_env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    r.start_error = cat(argv[0], ": ", std::strerror(rc));
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return r;
  }
  r.started = true;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  char buffer[4096];
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (open_fds > 0) {
    const double left = timeout_seconds - elapsed();
    if (left <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    const int ready = ::poll(fds, 2, static_cast<int>(std::min(left, 1.0) * 1000) + 1);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        // Keep the report and a tail of the logs; a runaway child must not exhaust memory.
        if (sinks[i]->size() < (8u << 20)) sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& fd : fds)
    if (fd.fd >= 0) ::close(fd.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.seconds = elapsed();
  return r;
}

std::string describe_child_failure(const ChildResult& r, double timeout_seconds) {
  std::string text;
  if (!r.started) text = "could not start: " + r.start_error;
  else if (r.timed_out) text = cat("timed out after ", timeout_seconds, " s and was killed");
  else if (r.signal) text = cat("killed by signal ", r.signal, " (", ::strsignal(r.signal), ")");
  else if (r.exit_code != 0) text = cat("exited with code ", r.exit_code);
  else text = "printed no report";
  std::vector<std::string> lines;
  for (const auto& l : split(r.err, '\n'))
    if (!trim(l).empty()) lines.push_back(trim(l));
  if (lines.size() > 4) lines.erase(lines.begin(), lines.end() - 4);
  if (!lines.empty()) text += "; its last output: " + join(lines, " | ");
  return text;
}

namespace {

// The last line of stdout that parses as a JSON object.
std::optional<nlohmann::json> report_of(const ChildResult& r) {
  if (!r.started || r.signal || r.timed_out || r.exit_code != 0) return std::nullopt;
  const auto lines = split(r.out, '\n');
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    const std::string line = trim(*it);
    if (line.empty() || line[0] != '{') continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) return j;
  }
  return std::nullopt;
}

}  // namespace

std::vector<std::string> archs_from_nvcc_flags(const std::string& flags) {
  std::vector<std::string> out;
  static const std::regex arch(R"((sm|compute)_[0-9]+[a-z]?)");
  for (std::sregex_iterator it(flags.begin(), flags.end(), arch), end; it != end; ++it) {
    std::string a = it->str();
    // "arch=compute_80,code=sm_80" names PTX only in `code=`; the `arch=` part is the virtual target.
    const auto pos = static_cast<std::size_t>(it->position());
    const bool is_arch_field = pos >= 5 && flags.compare(pos - 5, 5, "arch=") == 0;
    if (is_arch_field) continue;
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  return out;
}

DetkitTorchFacts parse_torch_info(const ChildResult& r, const std::string& built_with, double timeout_seconds) {
  DetkitTorchFacts t;
  t.built_with = built_with;
  t.probed = true;
  const auto j = report_of(r);
  if (!j) {
    t.error = "the LibTorch probe " + describe_child_failure(r, timeout_seconds);
    return t;
  }
  t.loaded = j->value("loaded", false);
  t.error = j->value("error", "");
  t.version = j->value("version", "");
  t.cuda_version = j->value("cuda", "");
  t.cudnn_version = j->value("cudnn", "");
  t.archs = archs_from_nvcc_flags(j->value("arch_flags", ""));
  t.device_count = j->value("device_count", 0);
  return t;
}

SmokeOutcome parse_smoke(const ChildResult& r, const std::string& device, double timeout_seconds) {
  SmokeOutcome s;
  s.device = device;
  const auto j = report_of(r);
  if (!j) {
    s.crashed = true;
    s.crash = "the smoke test child " + describe_child_failure(r, timeout_seconds);
    return s;
  }
  s.device = j->value("device", device);
  s.device_name = j->value("device_name", "");
  s.failed_stage = j->value("failed_stage", "");
  s.error = j->value("error", "");
  s.autocast_dtype = j->value("autocast_dtype", "");
  s.max_abs_diff = j->value("max_abs_diff", 0.0);
  s.tolerance = j->value("tolerance", 0.0);
  s.seconds = j->value("seconds", 0.0);
  return s;
}

}  // namespace detkit::diag

#include "core/launch.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"

extern char** environ;

namespace detkit {

namespace {

std::atomic<int> g_forward_signal{0};

void remember_signal(int signal) { g_forward_signal = signal; }

std::string describe_status(int status) {
  if (WIFEXITED(status)) return cat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return cat("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return "ended";
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

int64_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw RunError({"cannot open a socket to find a free port", std::strerror(errno), "set MASTER_PORT yourself"});
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok) throw RunError({"cannot find a free TCP port on 127.0.0.1", std::strerror(error), "set MASTER_PORT yourself"});
  return ntohs(addr.sin_port);
}

LaunchResult launch_local_ranks(const std::vector<std::string>& argv, const LaunchOptions& options) {
  DETKIT_ASSERT(!argv.empty() && options.nproc >= 1, "launch needs a program and at least one rank");
  const int64_t port = options.master_port > 0 ? options.master_port : free_tcp_port();

  // Environments and argument vectors are built before fork: the child only calls async-signal-safe
  // functions before exec.
  std::vector<std::string> base;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (name != "RANK" && name != "WORLD_SIZE" && name != "LOCAL_RANK" && name != "LOCAL_WORLD_SIZE" &&
        name != "MASTER_ADDR" && name != "MASTER_PORT" &&
        std::none_of(options.extra_env.begin(), options.extra_env.end(), [&](const auto& e) { return e.first == name; }))
      base.push_back(entry);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  const auto previous_int = std::signal(SIGINT, remember_signal);
  const auto previous_term = std::signal(SIGTERM, remember_signal);
  g_forward_signal = 0;
  struct RestoreSignals {
    decltype(previous_int) i, t;
    ~RestoreSignals() {
      std::signal(SIGINT, i);
      std::signal(SIGTERM, t);
    }
  } restore{previous_int, previous_term};

  std::vector<pid_t> pids;
  LaunchResult result;
  result.rank_exit_codes.assign(static_cast<std::size_t>(options.nproc), -1);  // -1: still running
  const auto signal_running = [&](int signal) {  // each rank's whole process group
    for (std::size_t r = 0; r < pids.size(); ++r)
      if (result.rank_exit_codes[r] < 0) ::kill(-pids[r], signal);
  };
  for (int64_t rank = 0; rank < options.nproc; ++rank) {
    std::vector<std::string> env = base;
    env.push_back(cat("RANK=", rank));
    env.push_back(cat("LOCAL_RANK=", rank));
    env.push_back(cat("WORLD_SIZE=", options.nproc));
    env.push_back(cat("LOCAL_WORLD_SIZE=", options.nproc));
    env.push_back(cat("MASTER_ADDR=", options.master_addr));
    env.push_back(cat("MASTER_PORT=", port));
    for (const auto& [name, value] : options.extra_env) env.push_back(name + "=" + value);
    std::vector<char*> envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setpgid(0, 0);  // the terminal's Ctrl-C reaches the launcher only, which passes it on once
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      ::execve(args[0], args.data(), envp.data());
      ::_exit(127);
    }
    if (pid < 0) {
      const int error = errno;
      signal_running(SIGKILL);
      for (pid_t p : pids) ::waitpid(p, nullptr, 0);
      throw RunError({cat("could not start rank ", rank, " of ", options.nproc), std::strerror(error),
                      "free memory or processes (ulimit -u), or start fewer ranks"});
    }
    ::setpgid(pid, pid);  // also here, so a signal sent right away finds the group
    pids.push_back(pid);
  }
  log_info("started ", options.nproc, " ranks (pids ", [&] {
    std::string list;
    for (pid_t p : pids) list += (list.empty() ? "" : " ") + std::to_string(p);
    return list;
  }(), ") with MASTER_ADDR=", options.master_addr, " MASTER_PORT=", port);

  int64_t running = options.nproc;
  using clock = std::chrono::steady_clock;
  clock::time_point failed_at{}, termed_at{};
  bool termed = false;
  while (running > 0) {
    if (const int signal = g_forward_signal.exchange(0)) {
      log_warn("passing ", signal == SIGINT ? "Ctrl-C" : "SIGTERM", " on to every rank");
      signal_running(signal);
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (std::size_t r = 0; r < pids.size(); ++r) {
        if (pids[r] != done) continue;
        result.rank_exit_codes[r] = exit_code_of(status);
        --running;
        if (result.rank_exit_codes[r] != 0 && result.failed_rank < 0) {
          result.failed_rank = static_cast<int64_t>(r);
          result.exit_code = result.rank_exit_codes[r];
          result.failure = cat("rank ", r, " ", describe_status(status));
          failed_at = clock::now();
          // Interrupted: the others are stopping too, nothing to warn about.
          if (running > 0 && result.exit_code != static_cast<int>(ExitCode::interrupted))
            log_warn(result.failure, "; waiting up to ", options.grace_seconds, " s for the other ranks to stop");
        }
      }
      continue;
    }
    if (done < 0 && errno != EINTR) break;  // no children left
    if (result.failed_rank >= 0) {
      const double waited = std::chrono::duration<double>(clock::now() - failed_at).count();
      if (!termed && waited > options.grace_seconds) {
        log_warn("ranks still running ", options.grace_seconds, " s after ", result.failure, ": sending SIGTERM");
        signal_running(SIGTERM);
        termed = true;
        termed_at = clock::now();
      } else if (termed && clock::now() - termed_at > std::chrono::seconds(10)) {
        signal_running(SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return result;
}

}  // namespace detkit

#include "core/progress.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"

namespace detkit {

namespace {
using Clock = std::chrono::steady_clock;
constexpr double kTerminalRedrawS = 0.1;

volatile std::sig_atomic_t g_interrupts = 0;

void on_interrupt(int signal) {
  g_interrupts = g_interrupts + 1;
  if (g_interrupts >= 2) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}
}  // namespace

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), total_(total), unit_(std::move(unit)), terminal_(stderr_is_terminal()),
      start_(Clock::now()), last_emit_(start_) {}

Progress::~Progress() {
  // A progress abandoned by an exception leaves a terminal line open; end it so the error starts clean.
  if (!finished_ && terminal_ && done_ > 0) std::fputc('\n', stderr);
}

double Progress::plain_interval_s() {
  if (const char* env = std::getenv("DETKIT_PROGRESS_INTERVAL")) {
    if (auto v = parse_double(env); v && *v >= 0) return *v;
  }
  return 10.0;
}

std::string Progress::line(const std::string& extra) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string out = label_ + " ";
  if (total_ > 0) {
    const double fraction = static_cast<double>(done_) / static_cast<double>(total_);
    const int width = 20;
    const int filled = static_cast<int>(fraction * width + 1e-9);
    out += "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    out += cat(done_, "/", total_, " ", unit_);
    char pct[16];
    std::snprintf(pct, sizeof pct, " %3.0f%%", 100.0 * fraction);
    out += pct;
  } else {
    out += cat(done_, " ", unit_);
  }
  char r[48];
  std::snprintf(r, sizeof r, " %.1f %s/s", rate, unit_.c_str());
  out += r;
  if (total_ > 0 && rate > 0 && done_ < total_) {
    out += " eta " + format_duration(static_cast<double>(total_ - done_) / rate);
  } else {
    out += " elapsed " + format_duration(elapsed);
  }
  if (const uint64_t rss = resident_memory_bytes()) out += " mem " + format_bytes(rss);
  if (!extra.empty()) out += " " + extra;
  return out;
}

void Progress::advance(uint64_t n, const std::string& extra) {
  done_ += n;
  // Without a terminal the completing line is finish()'s to print: printed here too, a log would show
  // the last line of every epoch twice.
  if (!terminal_ && total_ > 0 && done_ >= total_) return;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_emit_).count();
  if (since >= (terminal_ ? kTerminalRedrawS : plain_interval_s())) {
    last_emit_ = now;
    emit(extra, false);
  }
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  emit(extra, true);
}

void Progress::emit(const std::string& extra, bool final) {
  if (!log_enabled(LogLevel::info)) return;
  // A plain log gets no line that repeats the previous one's count and fields (only the clock moved).
  if (!terminal_ && final && printed_done_ == done_ && printed_extra_ == extra) return;
  printed_done_ = done_;
  printed_extra_ = extra;
  const std::string text = line(extra);
  if (terminal_) {
    std::fprintf(stderr, "\r\033[K%s%s", text.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

uint64_t resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

void install_interrupt_handler() {
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
}

bool interrupt_requested() { return g_interrupts > 0; }

void set_interrupt_requested(bool value) { g_interrupts = value ? 1 : 0; }

void throw_if_interrupted(const std::string& what) {
  if (interrupt_requested())
    throw InterruptedError({what + " was interrupted", "Ctrl-C or SIGTERM was received",
                            "run the command again; finished outputs were kept and no partial file was left"});
}

}  // namespace detkit

// Counts the ATen operators the process dispatches (torch side): a measure of the host's work per
// training step that the CPU can take too. On a GPU every counted operator is at least one kernel launch,
// and each launch costs the host microseconds, so a step with many small operators is bound by the host.
//
// Counted: operators called from outside any other operator, on every thread (the autograd engine's
// backward ops included), while a counter is alive; operators they call internally are not (a foreach
// operator counts once, as it launches one fused kernel per chunk on a GPU). Counters must not overlap in
// time (each installs a global RecordFunction callback; the count is process-wide).
#pragma once

#include <cstdint>

namespace detkit::train {

class OperatorCounter {
 public:
  OperatorCounter();
  ~OperatorCounter();
  OperatorCounter(const OperatorCounter&) = delete;
  OperatorCounter& operator=(const OperatorCounter&) = delete;

  int64_t count() const;  // operators dispatched since construction

 private:
  uint64_t handle_ = 0;
};

}  // namespace detkit::train

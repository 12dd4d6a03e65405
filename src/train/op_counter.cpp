#include "train/op_counter.h"

#include <ATen/record_function.h>

#include <atomic>
#include <memory>

namespace detkit::train {

namespace {

std::atomic<int64_t> g_operators{0};
thread_local int t_depth = 0;  // operators open on this thread

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (fn.scope() == at::RecordScope::FUNCTION && t_depth++ == 0) g_operators.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (fn.scope() == at::RecordScope::FUNCTION) --t_depth;
}

}  // namespace

OperatorCounter::OperatorCounter() {
  g_operators.store(0);
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(on_start, on_end));
}

OperatorCounter::~OperatorCounter() { at::removeCallback(handle_); }

int64_t OperatorCounter::count() const { return g_operators.load(); }

}  // namespace detkit::train

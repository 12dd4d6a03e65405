// Translation of LibTorch failures into detkit's typed errors, at every boundary where torch-side code
// is called from torch-free code. A user never sees a raw c10 message with its C++ backtrace: they see
// what failed, why, and the fix.
#pragma once

#include <exception>
#include <string>
#include <utility>

namespace detkit {

// Rethrows the exception in flight as a detkit::Error subclass: c10 out-of-memory (and std::bad_alloc)
// become OutOfMemoryError; CUDA, cuDNN and cuBLAS failures EnvironmentError with a specific remedy where
// the message is recognised ("no kernel image", driver too old, ...); other c10 errors RunError carrying
// the first line of LibTorch's message. detkit::Error passes through unchanged. `doing` names the
// operation ("training step", "loading the model") and starts the message.
[[noreturn]] void rethrow_as_detkit_error(const std::string& doing);

// Runs `fn`, translating any exception with rethrow_as_detkit_error(doing).
template <class Fn>
auto guard_torch(const std::string& doing, Fn&& fn) -> decltype(fn()) {
  try {
    return std::forward<Fn>(fn)();
  } catch (...) {
    rethrow_as_detkit_error(doing);
  }
}

// Describes a c10 message without its backtrace: the text before the first "Exception raised from" or
// the first blank line, trimmed. Exposed for tests.
std::string strip_torch_backtrace(const std::string& message);

}  // namespace detkit

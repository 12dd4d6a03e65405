// Translation of LibTorch failures into detkit's typed errors, at every boundary where torch-side code
// is called from torch-free code. A user never sees a raw c10 message with its C++ backtrace: they see
// what failed, why, and the fix.
#pragma once

#include <c10/core/Device.h>

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

// The device a run asks for: "auto" is the first CUDA device when LibTorch sees one, else the CPU; "cuda"
// is cuda:0. Throws UsageError for text that is no device, EnvironmentError when CUDA is asked for and
// LibTorch sees no device (or the index is past the last one), with the doctor as the remedy.
c10::Device resolve_device(const std::string& text);

// Describes a c10 message without its backtrace: the text before the first "Exception raised from" or
// the first blank line, trimmed. Exposed for tests.
std::string strip_torch_backtrace(const std::string& message);

}  // namespace detkit

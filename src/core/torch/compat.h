// The one place where LibTorch API differences between 1.13 (Debian, CPU) and 2.x (CUDA builds on GPU
// hosts) are handled. Code elsewhere calls these wrappers instead of testing versions itself.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/version.h>

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#define DETKIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace detkit::compat {

// An owning reference to an autograd graph node (a tensor's grad_fn, a parameter's gradient accumulator):
// std::shared_ptr in LibTorch 1.13 to at least 2.11, c10::intrusive_ptr in 2.14. Both have get() and test
// as bool.
using AutogradNodeRef = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

// "1.13.0" from the headers LibTorch was compiled with.
inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// LibTorch's build configuration text (at::show_config), with CUDA, cuDNN and architecture lines.
std::string build_config();

// Name, compute capability and memory of CUDA device `index`; "" when CUDA support is not compiled in.
std::string cuda_device_description(int index);

// Turns autocast on or off for CUDA (fp16) or the CPU (bf16). LibTorch 2.4 replaced the per-device
// functions (set_enabled, set_cpu_enabled) with ones taking a device type.
void set_autocast(bool cuda, bool enabled);

// Chooses the CUDA autocast dtype: bfloat16 when `bf16`, else float16 (LibTorch's default).
void set_cuda_autocast_dtype(bool bf16);

// Drops the autocast cast cache. Call after each forward/backward under autocast: the cache holds casts
// of the weights, which become stale once the optimizer changes them.
void clear_autocast_cache();

// True when CUDA device `index` computes in bfloat16 natively (compute capability 8.0 or later).
bool cuda_supports_bf16(int index);

// The caching allocator's view of CUDA device `index`, in bytes (all 0 without CUDA support).
struct CudaMemory {
  uint64_t allocated = 0;       // held by tensors now
  uint64_t peak_allocated = 0;  // most held by tensors since the last reset
  uint64_t reserved = 0;        // held by the allocator (tensors + cache)
  uint64_t total = 0;           // device memory
  uint64_t free = 0;            // free on the device as the driver sees it (all processes)
};
CudaMemory cuda_memory(int index);
void cuda_reset_peak(int index);
// Returns cached, unused blocks to the driver (after an out-of-memory, before retrying smaller).
void cuda_empty_cache();
// Caps this process's share of device `index`'s memory (0 < fraction <= 1): allocations beyond it fail
// as out-of-memory. No effect without CUDA support.
void cuda_set_memory_fraction(double fraction, int index);

// A host-to-device copy queued on a side stream, so that it runs while the current stream computes. The
// copy must be waited for (cuda_wait_for_copy) before `tensor` is used on the current stream.
struct SideStreamCopy {
  at::Tensor tensor;            // on the device
  std::shared_ptr<void> event;  // the copy's completion (a CUDA event); null: nothing to wait for
};
// Copies `pinned` (page-locked host memory, so the copy does not wait) to CUDA `device` on a stream from
// LibTorch's pool. Without CUDA support: a plain copy.
SideStreamCopy cuda_copy_on_side_stream(const at::Tensor& pinned, const c10::Device& device);
// Makes the device's current stream wait for the copy (the host does not wait) and records the tensor's
// memory as used by that stream, so the allocator does not reuse it early. Returns the tensor.
at::Tensor cuda_wait_for_copy(SideStreamCopy& copy);

// Makes CUDA device `index` this thread's current device (NCCL and new CUDA tensors use it). No effect
// without CUDA support.
void cuda_set_device(int index);

// Whether cuDNN times its convolution algorithms for each new input shape and keeps the fastest (true)
// or takes its heuristic choice (false). Process-wide; no effect without cuDNN.
void set_cudnn_benchmark(bool on);

// Makes every operation that waits for CUDA device work (.item(), a copy to the host, a blocking copy
// from pageable host memory, a stream synchronisation) throw when `error` is true (LibTorch's sync debug
// mode), and stops that when false. For tests that prove a code path never makes the host wait. No
// effect without CUDA support.
void cuda_error_on_sync(bool error);

// Whether c10d's TCP store options (`StoreOptions`: c10d::TCPStoreOptions) choose between its libuv server
// and its classic one. LibTorch 1.13 has only the classic server; 2.x has a `useLibUV` option, true by
// default since 2.4, and a LibTorch built without libuv (Debian's 2.x) then refuses to start a store
// unless it is turned off.
template <typename StoreOptions, typename = void>
struct has_tcp_store_libuv_choice : std::false_type {};
template <typename StoreOptions>
struct has_tcp_store_libuv_choice<StoreOptions, std::void_t<decltype(std::declval<StoreOptions&>().useLibUV = true)>>
    : std::true_type {};

// Asks for the libuv server (`on`) or the classic one, and returns whether these options have the choice
// (when not, they are left as they are).
template <typename StoreOptions>
bool set_tcp_store_libuv(StoreOptions& options, bool on) {
  if constexpr (has_tcp_store_libuv_choice<StoreOptions>::value) {
    options.useLibUV = on;
    return true;
  } else {
    return false;
  }
}

}  // namespace detkit::compat

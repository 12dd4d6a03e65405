#include "core/torch/runtime.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <new>

#include "core/error.h"
#include "core/text.h"
#include "core/torch/compat.h"

#if defined(DETKIT_TORCH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace detkit {

std::string strip_torch_backtrace(const std::string& message) {
  std::string text = message;
  for (const char* marker : {"Exception raised from", "\nFrame", "\n\n"}) {
    const auto pos = text.find(marker);
    if (pos != std::string::npos) text = text.substr(0, pos);
  }
  return trim(text);
}

namespace {

bool contains(const std::string& text, const char* needle) { return text.find(needle) != std::string::npos; }

[[noreturn]] void throw_translated(const std::string& doing, const std::string& raw) {
  const std::string text = strip_torch_backtrace(raw);
  const std::string what = doing + " failed in LibTorch";
  if (contains(text, "out of memory") || contains(text, "CUBLAS_STATUS_ALLOC_FAILED") ||
      contains(text, "CUDNN_STATUS_ALLOC_FAILED") || contains(text, "DefaultCPUAllocator: can't allocate"))
    throw OutOfMemoryError({doing + " ran out of memory", text,
                            "use a smaller batch or image size, enable mixed precision (amp=true), or free the device "
                            "('detkit plan' estimates what fits)"});
  if (contains(text, "no kernel image is available"))
    throw EnvironmentError({what, text,
                            "this LibTorch was not built for your GPU's compute capability: install a LibTorch/PyTorch "
                            "build whose architecture list includes it ('detkit doctor' shows both)"});
  if (contains(text, "CUDA driver version is insufficient") || contains(text, "driver version is insufficient"))
    throw EnvironmentError({what, text,
                            "the NVIDIA driver is older than the CUDA runtime LibTorch needs: update the driver, or use "
                            "a LibTorch built for an older CUDA ('detkit doctor' prints the minimum driver)"});
  if (contains(text, "CUDNN_STATUS") || contains(text, "cuDNN error"))
    throw EnvironmentError({what, text,
                            "cuDNN failed: check that the cuDNN version matches the one LibTorch was built with "
                            "('detkit doctor'), or rerun with cuDNN disabled to confirm"});
  if (contains(text, "CUBLAS_STATUS") || contains(text, "CUDA error") || contains(text, "CUDA-capable device") ||
      contains(text, "Torch not compiled with CUDA") || contains(text, "Cannot initialize CUDA"))
    throw EnvironmentError({what, text,
                            "check the GPU, driver and CUDA libraries with 'detkit doctor'; set CUDA_LAUNCH_BLOCKING=1 "
                            "to find the operation that failed"});
  throw RunError({what, text, "if the inputs are valid this may be a detkit bug; rerun with --log-level debug and report it"});
}

}  // namespace

void rethrow_as_detkit_error(const std::string& doing) {
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw_translated(doing, e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError({doing + " ran out of host memory", "a memory allocation failed",
                            "use a smaller batch, image size or cache=none, or free RAM"});
  } catch (const std::exception& e) {
    throw_translated(doing, e.what());
  } catch (...) {
    throw InternalError({doing + " failed with an unknown exception", "", "please report this as a detkit bug"});
  }
}

c10::Device resolve_device(const std::string& text) {
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (text == "auto") return count > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(text == "cuda" ? std::string("cuda:0") : text);
  } catch (const std::exception&) {
    throw UsageError({cat("'", text, "' is not a device"), "", "use cpu, cuda, cuda:N or auto"});
  }
  if (device.is_cuda() && device.index() >= count)
    throw EnvironmentError({cat("device ", text, " was asked for but LibTorch sees ", count, " CUDA device(s)"),
                            count == 0 ? "this LibTorch has no CUDA support, or no GPU/driver is visible"
                                       : "the index is past the last visible device",
                            "run 'detkit doctor' to see why, or use device=cpu"});
  if (!device.is_cuda() && !device.is_cpu())
    throw UsageError({cat("device '", text, "' is not supported"), "detkit trains on CUDA GPUs and on the CPU",
                      "use cpu, cuda, cuda:N or auto"});
  return device;
}

namespace compat {

std::string build_config() { return at::show_config(); }

std::string cuda_device_description(int index) {
#if defined(DETKIT_TORCH_CUDA)
  const cudaDeviceProp* props = at::cuda::getDeviceProperties(index);
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", static_cast<double>(props->totalGlobalMem) / (1024.0 * 1024 * 1024));
  return cat(props->name, " (sm_", props->major, props->minor, ", ", memory, ")");
#else
  (void)index;
  return "";
#endif
}

void set_autocast(bool cuda, bool enabled) {
#if DETKIT_TORCH_AT_LEAST(2, 4)
  const auto type = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(type, enabled);
  if (!cuda) at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
#else
  if (cuda) {
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
#endif
  if (!enabled) at::autocast::clear_cache();
}

void set_cuda_autocast_dtype(bool bf16) {
#if DETKIT_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(at::kCUDA, bf16 ? at::kBFloat16 : at::kHalf);
#else
  at::autocast::set_autocast_gpu_dtype(bf16 ? at::kBFloat16 : at::kHalf);
#endif
}

void clear_autocast_cache() { at::autocast::clear_cache(); }

bool cuda_supports_bf16(int index) {
#if defined(DETKIT_TORCH_CUDA)
  return at::cuda::getDeviceProperties(index)->major >= 8;
#else
  (void)index;
  return false;
#endif
}

CudaMemory cuda_memory(int index) {
  CudaMemory m;
#if defined(DETKIT_TORCH_CUDA)
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  // Stat arrays are indexed by StatType, whose AGGREGATE (all pools) is 0; the enum moved namespaces in
  // LibTorch 2.x, its value did not.
  const std::size_t all = 0;
  m.allocated = static_cast<uint64_t>(stats.allocated_bytes[all].current);
  m.peak_allocated = static_cast<uint64_t>(stats.allocated_bytes[all].peak);
  m.reserved = static_cast<uint64_t>(stats.reserved_bytes[all].current);
  m.total = static_cast<uint64_t>(at::cuda::getDeviceProperties(index)->totalGlobalMem);
  {
    int previous = 0;
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(index) == cudaSuccess) {
      if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) m.free = static_cast<uint64_t>(free_bytes);
      cudaSetDevice(previous);
    }
  }
#else
  (void)index;
#endif
  return m;
}

void cuda_reset_peak(int index) {
#if defined(DETKIT_TORCH_CUDA)
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
#else
  (void)index;
#endif
}

void cuda_empty_cache() {
#if defined(DETKIT_TORCH_CUDA)
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

SideStreamCopy cuda_copy_on_side_stream(const at::Tensor& pinned, const c10::Device& device) {
  SideStreamCopy out;
#if defined(DETKIT_TORCH_CUDA)
  const c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device.index());
  {
    const c10::cuda::CUDAStreamGuard on_side(stream);
    out.tensor = pinned.to(device, /*non_blocking=*/true);
  }
  auto done = std::make_shared<at::cuda::CUDAEvent>();
  done->record(stream);
  out.event = done;
#else
  out.tensor = pinned.to(device);
#endif
  return out;
}

at::Tensor cuda_wait_for_copy(SideStreamCopy& copy) {
#if defined(DETKIT_TORCH_CUDA)
  if (copy.event) {
    const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream(copy.tensor.device().index());
    static_cast<at::cuda::CUDAEvent*>(copy.event.get())->block(current);
    copy.tensor.record_stream(current);
    copy.event.reset();
  }
#endif
  return copy.tensor;
}

void cuda_set_device(int index) {
#if defined(DETKIT_TORCH_CUDA)
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#else
  (void)index;
#endif
}

void set_cudnn_benchmark(bool on) { at::globalContext().setBenchmarkCuDNN(on); }

void cuda_error_on_sync(bool error) {
#if defined(DETKIT_TORCH_CUDA)
  c10::cuda::warning_state().set_sync_debug_mode(error ? c10::cuda::SyncDebugMode::L_ERROR
                                                       : c10::cuda::SyncDebugMode::L_DISABLED);
#else
  (void)error;
#endif
}

void cuda_set_memory_fraction(double fraction, int index) {
#if defined(DETKIT_TORCH_CUDA)
  c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, index);
#else
  (void)fraction;
  (void)index;
#endif
}

}  // namespace compat

}  // namespace detkit

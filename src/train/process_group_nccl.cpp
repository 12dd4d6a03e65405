// Built with Gloo only: without it there is no distributed training at all (process_group.cpp).
#if defined(DETKIT_WITH_GLOO)
#include "train/process_group_backend.h"

#include "core/error.h"

#include <cstdlib>

#if defined(DETKIT_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace detkit::train {

bool nccl_compiled() {
#if defined(DETKIT_WITH_NCCL)
  return true;
#else
  return false;
#endif
}

c10::intrusive_ptr<C10dGroup> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                              int64_t world_size, std::chrono::milliseconds timeout) {
#if defined(DETKIT_WITH_NCCL)
  // Blocking wait: a collective's wait() returns only when it has finished, or throws once `timeout` has
  // passed (a dead or stuck rank), so the caller can name the failure. Without it wait() returns at once
  // and a stuck collective surfaces only when NCCL's watchdog aborts the process. The user's own setting
  // wins. (The variable lost its NCCL_ name in LibTorch 2.2.)
#if DETKIT_TORCH_AT_LEAST(2, 2)
  ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
#else
  ::setenv("NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
#endif
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, static_cast<int>(rank), static_cast<int>(world_size),
                                                     options);
#else
  (void)store;
  (void)rank;
  (void)world_size;
  (void)timeout;
  throw EnvironmentError({"this build of detkit has no NCCL backend",
                          "c10d's ProcessGroupNCCL was not compiled: the LibTorch it was built against is not a CUDA "
                          "build with NCCL, or its header did not compile here (cmake's output says which)",
                          "use dist_backend=gloo, or rebuild against a CUDA LibTorch 2.x (scripts/gpu-check shows how)"});
#endif
}

}  // namespace detkit::train

#endif  // DETKIT_WITH_GLOO

// Private to train/process_group*.cpp: the c10d type Gloo and NCCL groups are both used through, and the
// NCCL group's constructor, which lives in its own translation unit (process_group_nccl.cpp) because its
// header compiles only against a CUDA LibTorch with NCCL (cmake/dependencies.cmake checks that it does).
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstdint>

#include "core/torch/compat.h"

#if DETKIT_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

namespace detkit::train {

// LibTorch 2.x runs collectives on a c10d::Backend (ProcessGroupGloo, ProcessGroupNCCL); 1.13's groups
// are c10d::ProcessGroups themselves.
#if DETKIT_TORCH_AT_LEAST(2, 0)
using C10dGroup = c10d::Backend;
#else
using C10dGroup = c10d::ProcessGroup;
#endif

// True when this build compiled c10d's NCCL backend.
bool nccl_compiled();

// An NCCL group of `world_size` ranks meeting through `store`; collectives take CUDA tensors on the
// current CUDA device. Throws EnvironmentError when nccl_compiled() is false; c10d's own errors propagate.
c10::intrusive_ptr<C10dGroup> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                              int64_t world_size, std::chrono::milliseconds timeout);

}  // namespace detkit::train

// The collective operations distributed training needs, on PyTorch's own engine: a c10d process group
// over Gloo (CPU tensors; CUDA tensors through the host) or NCCL (CUDA tensors, GPU to GPU), with rank 0
// serving the rendezvous store (c10d::TCPStore) at MASTER_ADDR:PORT exactly as torch.distributed does, so
// detkit ranks can be launched by torchrun.
//
// Every collective must be called by every rank in the same order (the process-group contract). A rank
// that dies or stops answering makes the others' next collective fail within `timeout` instead of hanging:
// that failure is a RunError naming the operation and this rank, with the fix.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/distributed.h"

namespace detkit::train {

// Whether this build has c10d with Gloo (Debian's LibTorch with libgloo-dev headers; pip LibTorch 2.x).
bool distributed_available();

// The c10d backend the collectives run on.
enum class CommBackend { gloo, nccl };
const char* backend_name(CommBackend backend);  // "Gloo", "NCCL"

// Whether this build has c10d's NCCL backend (a CUDA LibTorch 2.x whose ProcessGroupNCCL header compiled
// here; cmake/dependencies.cmake).
bool nccl_available();

// The backend for config dist_backend = `requested` ("auto", "gloo" or "nccl") when training on `device`:
// auto is NCCL on a CUDA device when this build has it, else Gloo. Throws ConfigError for NCCL with a CPU
// device, EnvironmentError for NCCL in a build without it.
CommBackend choose_backend(const std::string& requested, const c10::Device& device);

// A sum over the ranks started by ProcessGroup::start_sum_ and running while this thread goes on (the
// gradient buckets of train/overlapped_average.h, all-reduced during the backward pass).
class PendingSum {
 public:
  PendingSum();
  PendingSum(PendingSum&&) noexcept;
  PendingSum& operator=(PendingSum&&) noexcept;
  ~PendingSum();
  bool started() const { return impl_ != nullptr; }
  // Blocks until the sum is in the tensor given to start_sum_; throws RunError as the group's blocking
  // collectives do (a rank that died or stopped answering). Once: afterwards started() is false.
  void wait();

 private:
  friend class ProcessGroup;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ProcessGroup {
 public:
  // Joins the job described by `env` (rank 0 starts the store, the others connect to it), waiting up to
  // `timeout` for all ranks, with collectives on `backend`. NCCL needs `device` (this rank's CUDA device,
  // made current); the collectives' scratch tensors live there. Throws EnvironmentError when this build
  // has no Gloo (or no NCCL when asked), RunError when the ranks do not all arrive in time or the store
  // cannot be reached (the address, port and fix named). While a group exists SIGPIPE is ignored in this
  // process (restored after), so a dead peer fails a collective with an error instead of killing this rank.
  static std::unique_ptr<ProcessGroup> connect(const DistributedEnv& env, std::chrono::milliseconds timeout,
                                               CommBackend backend = CommBackend::gloo,
                                               c10::Device device = c10::Device(c10::kCPU));
  // A group over a file store shared by the ranks (a path all of them can write; tests and one machine),
  // with collectives on `backend` as connect() has them.
  static std::unique_ptr<ProcessGroup> connect_file(const std::string& path, int64_t rank, int64_t world_size,
                                                    std::chrono::milliseconds timeout,
                                                    CommBackend backend = CommBackend::gloo,
                                                    c10::Device device = c10::Device(c10::kCPU));
  ~ProcessGroup();

  int64_t rank() const { return rank_; }
  int64_t world_size() const { return world_size_; }
  CommBackend backend() const { return backend_; }
  // Where the collectives' tensors live: this rank's GPU for NCCL, the CPU for Gloo.
  c10::Device device() const;

  // Replaces each tensor by its mean over the ranks (gradients). Tensors are packed into flat buckets of
  // at most `bucket_bytes` per dtype, so a model's hundreds of small gradients take a few collectives.
  void average(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = int64_t{25} << 20);
  // Overwrites each tensor with rank `root`'s (parameters and buffers at the start, so all ranks agree),
  // packed into buckets as average() packs them.
  void broadcast(const std::vector<at::Tensor>& tensors, int64_t root = 0, int64_t bucket_bytes = int64_t{25} << 20);
  // The largest of every rank's `value`: a flag any rank raises (a NaN, Ctrl-C, an out-of-memory split) is
  // seen by all at the same step.
  int64_t max(int64_t value);
  // The sum over the ranks (loss totals, sample counts for metrics).
  double sum(double value);
  // Element-wise sums over the ranks of a few numbers, in one collective (a step's flags and totals).
  std::vector<double> sum(const std::vector<double>& values);
  // Replaces `tensor` (contiguous) by its element-wise sum over the ranks.
  void sum_(at::Tensor& tensor);
  // Starts replacing `flat` (contiguous, on device()) by its element-wise sum over the ranks and returns at
  // once; `flat` must not be read or written until the result's wait() returns. Every rank must start the
  // same sums in the same order, as for the blocking collectives.
  PendingSum start_sum_(const at::Tensor& flat);
  void barrier();

 private:
  struct Impl;
  ProcessGroup(std::unique_ptr<Impl> impl, int64_t rank, int64_t world_size, CommBackend backend);
  std::unique_ptr<Impl> impl_;
  int64_t rank_ = 0, world_size_ = 1;
  CommBackend backend_ = CommBackend::gloo;
};

}  // namespace detkit::train

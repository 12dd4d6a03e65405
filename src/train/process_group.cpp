#include "train/process_group.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <map>
#include <string>

#include "core/error.h"
#include "core/log.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"

#if defined(DETKIT_WITH_GLOO)
#include "train/flat_buckets.h"
#include "train/process_group_backend.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace detkit::train {

bool distributed_available() {
#if defined(DETKIT_WITH_GLOO)
  return true;
#else
  return false;
#endif
}

const char* backend_name(CommBackend backend) { return backend == CommBackend::nccl ? "NCCL" : "Gloo"; }

bool nccl_available() {
#if defined(DETKIT_WITH_GLOO)
  return nccl_compiled();
#else
  return false;
#endif
}

CommBackend choose_backend(const std::string& requested, const c10::Device& device) {
  if (requested == "gloo") return CommBackend::gloo;
  if (requested == "auto") return device.is_cuda() && nccl_available() ? CommBackend::nccl : CommBackend::gloo;
  DETKIT_ASSERT(requested == "nccl", "dist_backend is auto, gloo or nccl");
  if (!device.is_cuda())
    throw ConfigError({"dist_backend=nccl needs training on CUDA devices, but this job trains on the CPU",
                       "NCCL moves tensors between GPUs only", "use dist_backend=gloo (or auto) on the CPU, or device=cuda"});
  if (!nccl_available())
    throw EnvironmentError({"dist_backend=nccl, but this build of detkit has no NCCL backend",
                            "it was built against a LibTorch without c10d's NCCL (a CPU build, or its header did not "
                            "compile here)",
                            "use dist_backend=gloo (or auto), or rebuild against a CUDA LibTorch 2.x"});
  return CommBackend::nccl;
}

#if defined(DETKIT_WITH_GLOO)

namespace {

// Gloo writes to its peers' sockets without MSG_NOSIGNAL: when a peer has died, the write raises SIGPIPE,
// which kills this rank silently (exit 141) instead of failing the collective with a named error. So while
// a group exists SIGPIPE is ignored (the write then fails with EPIPE and Gloo throws); the previous
// disposition comes back when the group is gone, its sockets closed.
struct IgnoredBrokenPipes {
  void (*previous)(int) = std::signal(SIGPIPE, SIG_IGN);
  IgnoredBrokenPipes() = default;
  IgnoredBrokenPipes(const IgnoredBrokenPipes&) = delete;
  IgnoredBrokenPipes& operator=(const IgnoredBrokenPipes&) = delete;
  ~IgnoredBrokenPipes() {
    if (previous != SIG_ERR) std::signal(SIGPIPE, previous);
  }
};

}  // namespace

struct ProcessGroup::Impl {
  IgnoredBrokenPipes broken_pipes;  // first: restored after the group and store below are torn down
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<C10dGroup> group;
  c10::Device device{c10::kCPU};  // where the collectives' tensors must be (NCCL: this rank's GPU)
};

namespace {

// Runs one collective, turning a peer's death or a timeout into a RunError.
template <typename Fn>
void collective(const char* what, int64_t rank, Fn&& fn) {
  try {
    fn();
  } catch (const detkit::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RunError({cat("distributed training: ", what, " failed on rank ", rank), strip_torch_backtrace(e.what()),
                    "another rank stopped or stopped answering: its log says why (a crash, out of memory, a kill); "
                    "fix that and resume the run with detkit train --resume"});
  }
}

// The fallback below needs the option; a LibTorch that renamed it must fail here, not at a user's run.
static_assert(!DETKIT_TORCH_AT_LEAST(2, 4) || compat::has_tcp_store_libuv_choice<c10d::TCPStoreOptions>::value,
              "c10d::TCPStoreOptions::useLibUV is gone: update compat::set_tcp_store_libuv");

// c10d's TCP store, on its libuv server where this LibTorch has one. LibTorch 2.4 and later ask for libuv
// by default, and one built without it (Debian's 2.x) refuses to start: the classic server is used then,
// and always when USE_LIBUV is set to anything but 1, as torch.distributed reads it.
c10::intrusive_ptr<c10d::Store> make_tcp_store(const std::string& host, c10d::TCPStoreOptions options) {
  if (const char* env = std::getenv("USE_LIBUV"); env != nullptr && std::string(env) != "1")
    compat::set_tcp_store_libuv(options, false);
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, options);
  } catch (const std::exception& e) {
    if (std::string(e.what()).find("without libuv") == std::string::npos || !compat::set_tcp_store_libuv(options, false))
      throw;
    log_debug("this LibTorch has no libuv: the rendezvous store uses c10d's classic TCP server");
    return c10::make_intrusive<c10d::TCPStore>(host, options);
  }
}

c10::intrusive_ptr<C10dGroup> make_group(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                         int64_t world_size, std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  // Loopback when the job lives on one machine; the host's name otherwise (gloo resolves it).
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(world_size), options);
}

}  // namespace

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl, int64_t rank, int64_t world_size, CommBackend backend)
    : impl_(std::move(impl)), rank_(rank), world_size_(world_size), backend_(backend) {}
ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistributedEnv& env, std::chrono::milliseconds timeout,
                                                    CommBackend backend, c10::Device device) {
  auto impl = std::make_unique<Impl>();
  impl->device = backend == CommBackend::nccl ? device : c10::Device(c10::kCPU);
  try {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(env.master_port);
    o.isServer = env.rank == 0 && !env.agent_store;  // under torchrun its agent serves the store
    o.numWorkers = static_cast<std::size_t>(env.world_size);
    o.waitWorkers = true;
    o.timeout = timeout;
    impl->store = make_tcp_store(env.master_addr, o);
    // The keys of this attempt, as torch.distributed's workers name them under torchrun (a restarted job
    // must not read the last attempt's).
    if (env.agent_store)
      impl->store = c10::make_intrusive<c10d::PrefixStore>(cat("/worker/attempt_", env.restart_count), impl->store);
    impl->group = backend == CommBackend::nccl ? make_nccl_group(impl->store, env.rank, env.world_size, timeout)
                                               : make_group(impl->store, env.rank, env.world_size, timeout);
  } catch (const detkit::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RunError({cat("rank ", env.rank, " of ", env.world_size, " could not join the job at ", env.master_addr, ":", env.master_port),
                    strip_torch_backtrace(e.what()),
                    cat("start all ", env.world_size, " ranks within ", timeout.count() / 1000,
                        " s with the same MASTER_ADDR and MASTER_PORT; if the port is taken, choose another (MASTER_PORT)")});
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl), env.rank, env.world_size, backend));
}

std::unique_ptr<ProcessGroup> ProcessGroup::connect_file(const std::string& path, int64_t rank, int64_t world_size,
                                                         std::chrono::milliseconds timeout, CommBackend backend,
                                                         c10::Device device) {
  auto impl = std::make_unique<Impl>();
  impl->device = backend == CommBackend::nccl ? device : c10::Device(c10::kCPU);
  try {
    impl->store = c10::make_intrusive<c10d::FileStore>(path, static_cast<int>(world_size));
    impl->store->setTimeout(timeout);
    impl->group = backend == CommBackend::nccl ? make_nccl_group(impl->store, rank, world_size, timeout)
                                               : make_group(impl->store, rank, world_size, timeout);
  } catch (const detkit::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RunError({cat("rank ", rank, " of ", world_size, " could not join the job through ", path), strip_torch_backtrace(e.what()),
                    "start every rank with the same store file, which none may have used before"});
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl), rank, world_size, backend));
}

namespace {

// Packs `tensors` into flat buckets per dtype, in order, each at most bucket_bytes (a tensor larger than
// that is a bucket alone), runs `collective` on each flat bucket (on `device`) in place, and copies the
// results back (whatever the tensors' memory layout and device). Every rank forms the same buckets from
// tensors of the same shapes, so the collectives pair up.
template <typename Fn>
void in_buckets(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, const c10::Device& device, Fn&& collective) {
  std::map<at::ScalarType, std::vector<std::vector<at::Tensor>>> buckets;
  std::map<at::ScalarType, int64_t> filled;
  for (const at::Tensor& t : tensors) {
    if (!t.defined() || t.numel() == 0) continue;
    auto& list = buckets[t.scalar_type()];
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    if (list.empty() || filled[t.scalar_type()] + bytes > bucket_bytes) {
      list.emplace_back();
      filled[t.scalar_type()] = 0;
    }
    list.back().push_back(t);
    filled[t.scalar_type()] += bytes;
  }
  for (auto& [dtype, list] : buckets)
    for (auto& bucket : list) {
      std::vector<at::Tensor> views;
      for (const at::Tensor& t : bucket) views.push_back(in_memory_order(t));
      std::vector<at::Tensor> flat{pack_flat(views).to(device)};
      collective(flat);
      unpack_flat(views, flat[0]);
    }
}

}  // namespace

void ProcessGroup::average(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  const double scale = 1.0 / static_cast<double>(world_size_);
  in_buckets(tensors, bucket_bytes, impl_->device, [&](std::vector<at::Tensor>& flat) {
    collective("averaging gradients", rank_, [&] { impl_->group->allreduce(flat)->wait(); });
    flat[0].mul_(scale);
  });
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int64_t root, int64_t bucket_bytes) {
  c10d::BroadcastOptions o;
  o.rootRank = root;
  in_buckets(tensors, bucket_bytes, impl_->device, [&](std::vector<at::Tensor>& flat) {
    collective("broadcasting the weights", rank_, [&] { impl_->group->broadcast(flat, o)->wait(); });
  });
}

int64_t ProcessGroup::max(int64_t value) {
  std::vector<at::Tensor> one{at::full({1}, value, at::TensorOptions().dtype(at::kLong).device(impl_->device))};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  collective("agreeing on a step's outcome", rank_, [&] { impl_->group->allreduce(one, o)->wait(); });
  return one[0].item<int64_t>();
}

double ProcessGroup::sum(double value) {
  std::vector<at::Tensor> one{at::full({1}, value, at::TensorOptions().dtype(at::kDouble).device(impl_->device))};
  collective("summing metrics", rank_, [&] { impl_->group->allreduce(one)->wait(); });
  return one[0].item<double>();
}

std::vector<double> ProcessGroup::sum(const std::vector<double>& values) {
  if (values.empty()) return values;
  std::vector<at::Tensor> one{at::tensor(values, at::kDouble).to(impl_->device)};
  collective("agreeing on a step's outcome", rank_, [&] { impl_->group->allreduce(one)->wait(); });
  const at::Tensor host = one[0].cpu();
  const double* p = host.data_ptr<double>();
  return {p, p + values.size()};
}

void ProcessGroup::sum_(at::Tensor& tensor) {
  DETKIT_ASSERT(tensor.is_contiguous(), "sum_ needs a contiguous tensor");
  std::vector<at::Tensor> one{tensor.to(impl_->device)};
  collective("synchronising batch statistics", rank_, [&] { impl_->group->allreduce(one)->wait(); });
  if (!one[0].is_same(tensor)) tensor.copy_(one[0]);
}

void ProcessGroup::barrier() {
  collective("waiting for the other ranks", rank_, [&] { impl_->group->barrier()->wait(); });
}

c10::Device ProcessGroup::device() const { return impl_->device; }

struct PendingSum::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  int64_t rank = 0;
};

PendingSum ProcessGroup::start_sum_(const at::Tensor& flat) {
  DETKIT_ASSERT(flat.is_contiguous() && flat.device() == impl_->device, "start_sum_ needs a contiguous tensor on the group's device");
  PendingSum pending;
  pending.impl_ = std::make_unique<PendingSum::Impl>();
  pending.impl_->rank = rank_;
  std::vector<at::Tensor> one{flat};
  collective("averaging gradients", rank_, [&] { pending.impl_->work = impl_->group->allreduce(one); });
  return pending;
}

void PendingSum::wait() {
  DETKIT_ASSERT(impl_ != nullptr, "wait() on a sum that was not started");
  const std::unique_ptr<Impl> impl = std::move(impl_);
  collective("averaging gradients", impl->rank, [&] { impl->work->wait(); });
}

#else  // no Gloo in this build

struct ProcessGroup::Impl {};
struct PendingSum::Impl {};

namespace {
[[noreturn]] void unavailable() {
  throw EnvironmentError({"this build of detkit has no distributed training",
                          "LibTorch's c10d with Gloo was not found when detkit was built",
                          "install libgloo-dev (Debian) and rebuild (make build), or build against a LibTorch 2.x"});
}
}  // namespace

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl, int64_t rank, int64_t world_size, CommBackend backend)
    : impl_(std::move(impl)), rank_(rank), world_size_(world_size), backend_(backend) {}
ProcessGroup::~ProcessGroup() = default;
std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistributedEnv&, std::chrono::milliseconds, CommBackend, c10::Device) {
  unavailable();
}
std::unique_ptr<ProcessGroup> ProcessGroup::connect_file(const std::string&, int64_t, int64_t, std::chrono::milliseconds,
                                                         CommBackend, c10::Device) {
  unavailable();
}
void ProcessGroup::average(const std::vector<at::Tensor>&, int64_t) { unavailable(); }
void ProcessGroup::broadcast(const std::vector<at::Tensor>&, int64_t, int64_t) { unavailable(); }
int64_t ProcessGroup::max(int64_t) { unavailable(); }
double ProcessGroup::sum(double) { unavailable(); }
std::vector<double> ProcessGroup::sum(const std::vector<double>&) { unavailable(); }
void ProcessGroup::sum_(at::Tensor&) { unavailable(); }
void ProcessGroup::barrier() { unavailable(); }
c10::Device ProcessGroup::device() const { unavailable(); }
PendingSum ProcessGroup::start_sum_(const at::Tensor&) { unavailable(); }
void PendingSum::wait() { unavailable(); }

#endif

PendingSum::PendingSum() = default;
PendingSum::PendingSum(PendingSum&&) noexcept = default;
PendingSum& PendingSum::operator=(PendingSum&&) noexcept = default;
PendingSum::~PendingSum() = default;

}  // namespace detkit::train

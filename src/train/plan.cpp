#include "train/plan.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/CPUAllocator.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "augment/loader.h"
#include "augment/multiscale.h"
#include "train/op_counter.h"
#include "train/optimizer_step.h"
#include "train/setup.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/text.h"
#include "core/threads.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "data/dataset.h"
#include "infer/predict.h"
#include "models/checkpoint.h"
#include "models/loss.h"
#include "models/yolo.h"

namespace detkit::train {

namespace {

// ---------------------------------------------------------------------------------------------------
// The counting CPU allocator. One instance for the whole process, never destroyed: memory allocated
// through it may be freed long after the counter that installed it is gone, and its deleter must still
// find the entry. The DataPtr context is the data pointer itself (as LibTorch's default CPU allocator
// does), so the raw allocate/deallocate interface keeps working; the original context and deleter are
// kept in a map.

void counting_delete(void* ptr);

class CountingAllocator final : public c10::Allocator {
 public:
  // LibTorch 2.3 made allocate() non-const. Both overloads are declared without `override`: whichever
  // matches the base class's pure virtual implements it, the other is an unused overload.
  c10::DataPtr allocate(size_t n) const { return const_cast<CountingAllocator*>(this)->allocate_impl(n); }
  c10::DataPtr allocate(size_t n) { return allocate_impl(n); }
  c10::DeleterFnPtr raw_deleter() const override { return &counting_delete; }
  // Pure virtual since LibTorch 2.3 (clone()); a plain member before.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }

  void release(void* ptr) {
    Entry entry;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = live_.find(ptr);
      if (it == live_.end()) return;  // cannot happen: every DataPtr with this deleter is in the map
      entry = it->second;
      live_.erase(it);
    }
    current_.fetch_sub(static_cast<int64_t>(entry.size));
    if (entry.deleter) entry.deleter(entry.context);
  }

  c10::Allocator* original = nullptr;  // the allocator wrapped while installed
  std::atomic<bool> installed{false};

  int64_t current() const { return current_.load(); }
  int64_t peak() const { return peak_.load(); }
  void reset_peak() { peak_.store(current_.load()); }

 private:
  struct Entry {
    std::size_t size = 0;
    void* context = nullptr;
    c10::DeleterFnPtr deleter = nullptr;
  };

  c10::DataPtr allocate_impl(size_t n) {
    c10::Allocator* inner_allocator = original ? original : c10::GetDefaultCPUAllocator();
    c10::DataPtr inner = inner_allocator->allocate(n);
    void* data = inner.get();
    if (data == nullptr) return inner;  // zero bytes
    const c10::Device device = inner.device();
    Entry entry{n, inner.get_context(), inner.get_deleter()};
    inner.release_context();  // ownership moves to the entry
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[data] = entry;
    }
    const int64_t now = current_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t seen = peak_.load();
    while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
    }
    return c10::DataPtr(data, data, &counting_delete, device);
  }

  std::atomic<int64_t> current_{0}, peak_{0};
  std::mutex mutex_;
  std::unordered_map<void*, Entry> live_;
};

CountingAllocator& counting_allocator() {
  static CountingAllocator* instance = new CountingAllocator;  // never destroyed (see above)
  return *instance;
}

void counting_delete(void* ptr) { counting_allocator().release(ptr); }

// The highest priority: SetAllocator replaces an allocator registered with a priority not above it.
constexpr uint8_t kCounterPriority = 255;

// ---------------------------------------------------------------------------------------------------

using clock_type = std::chrono::steady_clock;

uint64_t tensor_bytes(const std::vector<at::Tensor>& tensors) {
  uint64_t n = 0;
  for (const auto& t : tensors) n += static_cast<uint64_t>(t.numel()) * t.element_size();
  return n;
}

// Reads allocated bytes on the profiled device: the CUDA caching allocator's statistics, or the counting
// CPU allocator (which the caller has installed).
struct DeviceMeter {
  c10::Device device;
  CpuAllocationCounter* cpu = nullptr;

  int64_t current() const {
    if (device.is_cuda()) return static_cast<int64_t>(compat::cuda_memory(device.index()).allocated);
    return cpu->current();
  }
  int64_t peak() const {
    if (device.is_cuda()) return static_cast<int64_t>(compat::cuda_memory(device.index()).peak_allocated);
    return cpu->peak();
  }
  void reset_peak() {
    if (device.is_cuda()) compat::cuda_reset_peak(device.index());
    else cpu->reset_peak();
  }
};

c10::Device normalised(c10::Device device) {
  if (device.is_cuda() && !device.has_index()) return c10::Device(c10::kCUDA, 0);
  return device;
}

// A model, its loss and synthetic batches, stepped as the trainer steps them (Trainer::run_chunks).
class Profiler {
 public:
  explicit Profiler(const ProfileSpec& spec) : spec_(spec), device_(normalised(spec.device)) {
    if (spec.imgsz < 32 || spec.imgsz % 32 != 0)
      throw UsageError({cat("the image size must be a positive multiple of 32; got ", spec.imgsz), "",
                        cat("use ", std::max<int64_t>(32, (spec.imgsz + 31) / 32 * 32))});
    models::YoloOptions options;
    options.scale = models::yolo_scale(spec.model);
    options.classes = spec.classes;
    options.stride4 = spec.stride4;
    model_ = models::YoloDetector(options);
    model_->to(device_);
    if (spec.channels_last) models::use_channels_last(model_);
    model_->train();
    for (const auto& p : model_->parameters())
      if (p.requires_grad()) params_.push_back(p);
    if (device_.is_cuda() && spec.amp) {
      bf16_ = compat::cuda_supports_bf16(device_.index());
      compat::set_cuda_autocast_dtype(bf16_);
    }
  }

  models::YoloDetector& model() { return model_; }
  const std::vector<at::Tensor>& params() const { return params_; }
  bool bf16() const { return bf16_; }

  // uint8 images [B, 3, s, s] with random pixels and float targets [B * K, 6] of random boxes (at least
  // 4 px wide, inside the image), on the CPU, as the loader delivers them.
  std::pair<at::Tensor, at::Tensor> batch(int64_t b) const {
    auto gen = at::detail::createCPUGenerator(spec_.seed + static_cast<uint64_t>(b));
    const int64_t s = spec_.imgsz, k = std::max<int64_t>(spec_.boxes_per_image, 0);
    at::Tensor images = at::randint(0, 256, {b, 3, s, s}, gen, at::TensorOptions().dtype(at::kByte));
    at::Tensor targets = at::zeros({b * k, 6});
    if (k > 0) {
      const auto f = at::TensorOptions().dtype(at::kFloat);
      const at::Tensor owner = at::arange(b, f).repeat_interleave(k);
      const at::Tensor cls = at::randint(0, spec_.classes, {b * k}, gen, f);
      const double sd = static_cast<double>(s);
      const at::Tensor wh = at::rand({b * k, 2}, gen, f) * (sd * 0.5) + 4.0;
      const at::Tensor xy = at::rand({b * k, 2}, gen, f) * (sd - wh);
      targets = at::stack({owner, cls, xy.select(1, 0), xy.select(1, 1), xy.select(1, 0) + wh.select(1, 0),
                           xy.select(1, 1) + wh.select(1, 1)},
                          1);
    }
    return {images, targets};
  }

  // Forward (under autocast when asked), loss, backward; the trainer's order of operations.
  void step(const at::Tensor& images_cpu, const at::Tensor& targets_cpu) {
    at::Tensor images = infer::to_model_input(images_cpu.to(device_), device_);
    if (spec_.channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor& targets = targets_cpu;  // on the host, as the trainer passes them
    models::LossTerms terms;
    {
      if (spec_.amp) compat::set_autocast(device_.is_cuda(), true);
      struct AutocastOff {
        bool on, cuda;
        ~AutocastOff() {
          if (on) compat::set_autocast(cuda, false);
        }
      } off{spec_.amp, device_.is_cuda()};
      const auto outputs = model_->forward(images);
      terms = loss_(outputs, targets, images.size(0));
    }
    terms.total.backward();
    if (spec_.amp) compat::clear_autocast_cache();
    (void)terms.total.item<double>();  // the trainer reads the loss values once, after backward
  }

  // Gradients allocated and zero (as they are between optimizer steps of a LibTorch 1.x optimizer).
  void zero_grads() {
    torch::NoGradGuard no_grad;
    for (auto& p : params_) {
      if (p.grad().defined()) p.mutable_grad().zero_();
      else p.mutable_grad() = at::zeros_like(p);
    }
  }

 private:
  ProfileSpec spec_;
  c10::Device device_;
  models::YoloDetector model_{nullptr};
  models::DetectionLoss loss_;
  std::vector<at::Tensor> params_;
  bool bf16_ = false;
};

// Runs `fn` with a meter on `device` (installing the CPU counter for CPU devices).
template <class Fn>
auto with_meter(c10::Device device, Fn&& fn) {
  if (device.is_cuda()) {
    DeviceMeter meter{device, nullptr};
    return fn(meter);
  }
  CpuAllocationCounter counter;
  DeviceMeter meter{device, &counter};
  return fn(meter);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------

CpuAllocationCounter::CpuAllocationCounter() {
  CountingAllocator& a = counting_allocator();
  bool expected = false;
  if (!a.installed.compare_exchange_strong(expected, true))
    throw RunError({"a CPU allocation counter is already installed", "", "measure one thing at a time"});
  a.original = c10::GetCPUAllocator();
  c10::SetCPUAllocator(&a, kCounterPriority);
  a.reset_peak();
}

CpuAllocationCounter::~CpuAllocationCounter() {
  CountingAllocator& a = counting_allocator();
  // `original` stays set: memory allocated through it is freed through the entries' own deleters.
  c10::SetCPUAllocator(a.original, kCounterPriority);
  a.installed.store(false);
}

int64_t CpuAllocationCounter::current() const { return counting_allocator().current(); }
int64_t CpuAllocationCounter::peak() const { return counting_allocator().peak(); }
void CpuAllocationCounter::reset_peak() { counting_allocator().reset_peak(); }

// ---------------------------------------------------------------------------------------------------

namespace {

// What measuring found, besides the step peaks.
struct Measured {
  std::vector<StepMeasurement> steps;
  uint64_t persistent_extra = 0;  // left allocated by the first step besides gradients (cuBLAS workspace, caches)
  uint64_t weights = 0, params = 0;
  int64_t parameters = 0;
  uint64_t baseline = 0;          // allocated before the measured steps (weights, gradients, extra)
  bool bf16 = false;
};

Measured measure(const ProfileSpec& spec, const std::vector<int64_t>& batches) {
  if (batches.empty()) throw UsageError({"no batch sizes to profile", "", "give at least one batch size"});
  for (int64_t b : batches)
    if (b < 1) throw UsageError({cat("profiling batch sizes must be at least 1; got ", b), "", "use 1, 2, 4..."});
  const c10::Device device = normalised(spec.device);
  return with_meter(device, [&](DeviceMeter& meter) {
    Measured m;
    const int64_t before_model = meter.current();
    Profiler profiler(spec);
    m.bf16 = profiler.bf16();
    m.params = tensor_bytes(profiler.params());
    for (const auto& p : profiler.params()) m.parameters += p.numel();
    m.weights = tensor_bytes(profiler.model()->parameters()) + tensor_bytes(profiler.model()->buffers());
    const int64_t with_model = meter.current();
    {
      const auto [images, targets] = profiler.batch(batches.front());
      profiler.step(images, targets);  // warm-up: gradients, lazily built state, library workspaces
    }
    profiler.zero_grads();
    const int64_t after_warmup = meter.current();
    m.persistent_extra = static_cast<uint64_t>(std::max<int64_t>(0, after_warmup - with_model - static_cast<int64_t>(m.params)));
    m.baseline = static_cast<uint64_t>(std::max<int64_t>(0, after_warmup - before_model));
    for (int64_t b : batches) {
      const auto [images, targets] = profiler.batch(b);
      profiler.zero_grads();
      const auto start = clock_type::now();
      const int64_t base = meter.current();
      meter.reset_peak();
      profiler.step(images, targets);
      StepMeasurement s;
      s.batch = b;
      s.imgsz = spec.imgsz;
      s.peak = static_cast<uint64_t>(std::max<int64_t>(0, meter.peak() - base));
      if (device.is_cuda()) s.reserved = compat::cuda_memory(device.index()).reserved;
      s.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
      log_debug("plan: ", spec.model, " ", spec.imgsz, " px, batch ", b, spec.amp ? " amp" : " fp32", ": step peak ",
                format_bytes(s.peak), " (", s.seconds, " s)");
      m.steps.push_back(s);
    }
    return m;
  });
}

// Least-squares line through (batch, peak): fixed + batch * per_image.
std::pair<double, double> fit_line(const std::vector<StepMeasurement>& steps) {
  if (steps.size() == 1) return {0.0, static_cast<double>(steps[0].peak) / static_cast<double>(steps[0].batch)};
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(steps.size());
  for (const auto& s : steps) {
    const double x = static_cast<double>(s.batch), y = static_cast<double>(s.peak);
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double denominator = n * sxx - sx * sx;
  if (denominator <= 0) return {0.0, sy / std::max(sx, 1.0)};
  const double slope = (n * sxy - sx * sy) / denominator;
  return {(sy - slope * sx) / n, slope};
}

uint64_t clamp_bytes(double v) { return v <= 0 ? 0 : static_cast<uint64_t>(std::llround(v)); }

// Typical CUDA context with cuDNN and cuBLAS loaded (used when planning a GPU run without one).
constexpr uint64_t kAssumedCudaContext = 600ull << 20;
constexpr double kAssumedCudaAllocatorOverhead = 0.10;

std::string precision_name(bool amp, bool cuda, bool bf16) {
  if (!amp) return "float32";
  if (!cuda) return "bfloat16 (CPU autocast)";
  return bf16 ? "bfloat16 (CUDA autocast)" : "float16 (CUDA autocast)";
}

int64_t largest_fitting(const MemoryBreakdown& m, int64_t nominal_batch, uint64_t budget) {
  int64_t best = 0;
  for (int64_t b : batch_candidates(8192)) {
    if (predicted_peak(m, b, nominal_batch) > budget) break;
    best = b;
  }
  return best;
}

}  // namespace

std::vector<StepMeasurement> measure_steps(const ProfileSpec& spec, const std::vector<int64_t>& batches) {
  return measure(spec, batches).steps;
}

TrainingSpeedResult measure_training_speed(const ProfileSpec& spec, int64_t batch, int64_t steps, int64_t warmup) {
  DETKIT_ASSERT(batch >= 1 && steps >= 1 && warmup >= 0, "measure_training_speed needs a batch and steps");
  const c10::Device device = normalised(spec.device);
  return with_meter(device, [&](DeviceMeter& meter) {
    Profiler profiler(spec);
    models::YoloDetector ema_model(profiler.model()->options());
    ema_model->to(device);
    ema_model->eval();
    if (spec.channels_last) models::use_channels_last(ema_model);
    torch::optim::SGD optimizer(profiler.params(), torch::optim::SGDOptions(1e-4).momentum(0.9).nesterov(true));
    auto [images, targets] = profiler.batch(batch);
    images = images.to(device);
    std::vector<at::Tensor> ema_params = ema_model->parameters(), params = profiler.model()->parameters();
    // Reading a number back waits for the device, so the clock covers the queued work.
    const auto wait_for_device = [&] { (void)params.front().sum().item<double>(); };
    TrainingSpeedResult result;
    clock_type::time_point start;
    const auto update = [&] {
      unscale_clip_step(optimizer, profiler.params(), 1.0, 10.0);
      torch::NoGradGuard no_grad;
      at::_foreach_mul_(ema_params, 0.999);
      at::_foreach_add_(ema_params, params, 0.001);
      zero_gradients(optimizer);
    };
    for (int64_t i = 0; i < warmup + steps; ++i) {
      if (i == warmup) {
        wait_for_device();
        meter.reset_peak();
        start = clock_type::now();
      }
      profiler.step(images, targets);
      update();
    }
    wait_for_device();
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    {  // one more step, its operators counted (not timed: the counter's callbacks cost time)
      OperatorCounter counter;
      profiler.step(images, targets);
      result.step_operators = counter.count();
    }
    {
      OperatorCounter counter;
      update();
      result.update_operators = counter.count();
    }
    wait_for_device();
    result.device = device.str();
    result.precision = !spec.amp ? "fp32" : (device.is_cuda() ? (profiler.bf16() ? "bf16" : "fp16") : "bf16");
    result.batch = batch;
    result.steps = steps;
    result.step_seconds = seconds / static_cast<double>(steps);
    result.images_per_second = static_cast<double>(batch * steps) / seconds;
    result.peak_memory = static_cast<uint64_t>(std::max<int64_t>(0, meter.peak()));
    return result;
  });
}

uint64_t measure_training_peak(const ProfileSpec& spec, int64_t batch, bool ema) {
  const c10::Device device = normalised(spec.device);
  return with_meter(device, [&](DeviceMeter& meter) {
    const int64_t before = meter.current();
    meter.reset_peak();
    {
      Profiler profiler(spec);
      models::YoloDetector ema_model{nullptr};
      if (ema) {
        models::YoloOptions options = profiler.model()->options();
        ema_model = models::YoloDetector(options);
        ema_model->to(device);
        ema_model->eval();
      }
      std::unique_ptr<torch::optim::Optimizer> optimizer;
      if (spec.optimizer == "adamw")
        optimizer = std::make_unique<torch::optim::AdamW>(profiler.params(), torch::optim::AdamWOptions(1e-4));
      else
        optimizer = std::make_unique<torch::optim::SGD>(profiler.params(),
                                                        torch::optim::SGDOptions(1e-4).momentum(0.9).nesterov(true));
      const auto [images, targets] = profiler.batch(batch);
      for (int i = 0; i < 2; ++i) {
        profiler.step(images, targets);
        unscale_clip_step(*optimizer, profiler.params(), 1.0, 10.0);
        torch::NoGradGuard no_grad;
        if (ema) {
          auto dst = ema_model->parameters(), src = profiler.model()->parameters();
          for (std::size_t j = 0; j < dst.size(); ++j) dst[j].mul_(0.9).add_(src[j].detach(), 0.1);
        }
        zero_gradients(*optimizer);
      }
    }
    return static_cast<uint64_t>(std::max<int64_t>(0, meter.peak() - before));
  });
}

std::vector<int64_t> batch_candidates(int64_t max_batch) {
  std::vector<int64_t> out;
  for (int64_t b : {1, 2, 4})
    if (b <= max_batch) out.push_back(b);
  for (int64_t b = 8; b <= max_batch; b += 8) out.push_back(b);
  return out;
}

uint64_t predicted_peak(const MemoryBreakdown& m, int64_t batch, int64_t nominal_batch) {
  const double activations = std::max(0.0, m.activations_fixed + static_cast<double>(batch) * m.activations_per_image);
  uint64_t total = m.weights + m.gradients + m.optimizer + m.ema + clamp_bytes(activations);
  if (accumulation(batch, nominal_batch) > 1) total += m.gradients;  // the trainer's gradient backup
  total += clamp_bytes(activations * m.workspace_fraction) + m.workspace_fixed;
  total += m.host_fixed + static_cast<uint64_t>(batch) * m.host_per_image;
  return total;
}

MemoryPlan plan_memory(const PlanRequest& request) {
  const auto start = clock_type::now();
  MemoryPlan plan;
  plan.request = request;
  if (request.imgsz < 32 || request.imgsz % 32 != 0)
    throw UsageError({cat("--imgsz must be a positive multiple of 32 (the largest stride); got ", request.imgsz), "",
                      cat("use --imgsz ", std::max<int64_t>(32, (request.imgsz + 31) / 32 * 32))});
  if (request.batch < 1 || request.nominal_batch < 1)
    throw UsageError({"batch and nominal batch must be at least 1", "", "use --batch 16 --nominal-batch 64"});
  if (request.optimizer != "sgd" && request.optimizer != "adamw")
    throw UsageError({cat("unknown optimizer '", request.optimizer, "'"), "", "use sgd or adamw"});
  if (!(request.memory_fraction > 0 && request.memory_fraction <= 1))
    throw UsageError({cat("the memory fraction must be in (0, 1]; got ", request.memory_fraction), "", "use 0.9"});
  if (request.profile_imgsz < 32 || request.profile_imgsz % 32 != 0)
    throw UsageError({cat("the profiling size must be a positive multiple of 32; got ", request.profile_imgsz), "",
                      "use 320"});
  (void)models::yolo_scale(request.model);  // UsageError naming the nearest model

  const c10::Device device = normalised(resolve_device(request.device));
  const bool cuda = device.is_cuda();
  plan.device = device.str();
  plan.device_name = cuda ? compat::cuda_device_description(device.index()) : "CPU";
  plan.gpu_target = cuda || request.memory_is_gpu;
  plan.measured_imgsz = cuda ? request.imgsz : std::min(request.imgsz, request.profile_imgsz);
  const double ratio = static_cast<double>(request.imgsz) / static_cast<double>(plan.measured_imgsz);
  plan.area_scale = ratio * ratio;
  plan.measured_batches = request.profile_batches;
  if (plan.measured_batches.empty()) plan.measured_batches = cuda ? std::vector<int64_t>{4, 8} : std::vector<int64_t>{1, 2};
  if (plan.measured_batches.size() < 2)
    throw UsageError({"profiling needs two batch sizes at least", "activations are fitted as fixed + batch x per image",
                      "give two different batch sizes"});

  // Memory to plan for.
  if (request.memory_bytes > 0) {
    plan.memory = request.memory_bytes;
  } else if (cuda) {
    plan.memory = compat::cuda_memory(device.index()).total;
  } else {
    plan.memory = available_ram_bytes();
    if (plan.memory == 0)
      throw EnvironmentError({"cannot read the available RAM (/proc/meminfo)", "", "give the memory with --gpu-mem"});
  }
  plan.budget = static_cast<uint64_t>(static_cast<double>(plan.memory) * request.memory_fraction);

  const int64_t workers = request.workers > 0 ? request.workers : thread_count();
  const uint64_t image_bytes = static_cast<uint64_t>(3 * request.imgsz * request.imgsz);
  const int optimizer_copies = request.optimizer == "adamw" ? 2 : 1;
  const bool judge_amp = request.amp && plan.gpu_target;

  auto estimate = [&](bool amp) {
    ProfileSpec spec;
    spec.model = request.model;
    spec.classes = request.classes;
    spec.stride4 = request.stride4;
    spec.imgsz = plan.measured_imgsz;
    spec.boxes_per_image = request.boxes_per_image;
    spec.amp = amp;
    spec.optimizer = request.optimizer;
    spec.device = device;
    const Measured m = measure(spec, plan.measured_batches);
    for (const auto& s : m.steps) plan.measured_peaks.push_back(s.peak);
    plan.parameters = m.parameters;
    MemoryBreakdown b;
    b.measured = true;
    b.precision = precision_name(amp, cuda, m.bf16);
    b.weights = m.weights;
    b.gradients = m.params;
    b.optimizer = m.params * static_cast<uint64_t>(optimizer_copies);
    b.ema = request.ema ? m.weights : 0;
    const auto [fixed, per_image] = fit_line(m.steps);
    b.activations_fixed = fixed + static_cast<double>(m.persistent_extra);
    b.activations_per_image = per_image * plan.area_scale;
    if (plan.gpu_target) {
      if (cuda) {
        // Allocator overhead: what the caching allocator reserves beyond the peak it handed out, as a share
        // of the largest measured step; the context is what the driver uses beyond the reserve.
        const auto& last = m.steps.back();
        const auto mem = compat::cuda_memory(device.index());
        const double held = static_cast<double>(m.baseline + last.peak);
        b.workspace_fraction = std::clamp((static_cast<double>(last.reserved) - held) / std::max(1.0, static_cast<double>(last.peak)), 0.0, 1.0);
        const uint64_t used = mem.total > mem.free ? mem.total - mem.free : 0;
        plan.cuda_context = used > mem.reserved ? used - mem.reserved : 0;
      } else {
        b.workspace_fraction = kAssumedCudaAllocatorOverhead;
        plan.cuda_context = kAssumedCudaContext;
      }
      b.workspace_fixed = plan.cuda_context;
    } else {
      // CPU runs: the loader's prefetch queue (2 batches per worker) and the batch in use, uint8; the
      // trainer's serialised rollback checkpoint (model, EMA, optimizer state) in RAM.
      b.host_per_image = image_bytes * static_cast<uint64_t>(2 * workers + 1);
      b.host_fixed = b.weights + b.ema + b.optimizer;
    }
    const int64_t batch = request.batch;
    b.activations = clamp_bytes(b.activations_fixed + static_cast<double>(batch) * b.activations_per_image);
    b.gradient_backup = accumulation(batch, request.nominal_batch) > 1 ? b.gradients : 0;
    b.workspace = clamp_bytes(static_cast<double>(b.activations) * b.workspace_fraction) + b.workspace_fixed;
    b.host = b.host_fixed + static_cast<uint64_t>(batch) * b.host_per_image;
    b.total = predicted_peak(b, batch, request.nominal_batch);
    b.max_batch = largest_fitting(b, request.nominal_batch, plan.budget);
    return b;
  };

  // The precision judged first, so a slow second one can be left out.
  if (judge_amp) {
    plan.amp = estimate(true);
    if (request.both_precisions) plan.fp32 = estimate(false);
  } else {
    plan.fp32 = estimate(false);
    if (request.both_precisions) plan.amp = estimate(true);
  }

  const MemoryBreakdown& judged = judge_amp ? plan.amp : plan.fp32;
  plan.fits = judged.total <= plan.budget;
  int64_t best = judged.max_batch;
  if (best == 0 && plan.gpu_target && !request.amp && plan.amp.measured && plan.amp.max_batch > 0) {
    best = plan.amp.max_batch;
    plan.suggest_amp = true;
  }
  plan.suggested_nominal_batch = std::max(request.nominal_batch, int64_t{1});
  if (best > 0) {
    plan.suggested_batch = std::min(best, plan.suggested_nominal_batch);
    plan.suggested_accumulate = accumulation(plan.suggested_batch, plan.suggested_nominal_batch);
    plan.suggested_flags = cat("batch=", plan.suggested_batch, " nominal_batch=", plan.suggested_nominal_batch,
                               plan.suggest_amp ? " amp=true" : "");
  } else {
    // Nothing fits at this size: the largest size that fits batch 1 (activations scale with the area).
    for (int64_t s = request.imgsz - 32; s >= 32; s -= 32) {
      MemoryBreakdown smaller = judged;
      const double r = static_cast<double>(s) / static_cast<double>(request.imgsz);
      smaller.activations_per_image *= r * r;
      smaller.host_per_image = static_cast<uint64_t>(static_cast<double>(smaller.host_per_image) * r * r);
      if (predicted_peak(smaller, 1, request.nominal_batch) <= plan.budget) {
        plan.max_imgsz_batch1 = s;
        break;
      }
    }
    if (plan.max_imgsz_batch1 > 0)
      plan.suggested_flags = cat("imgsz=", plan.max_imgsz_batch1, " batch=1 nominal_batch=", plan.suggested_nominal_batch);
  }

  if (!cuda && plan.measured_imgsz != request.imgsz)
    plan.notes.push_back(cat("measured at ", plan.measured_imgsz, " px and scaled by area (x", plan.area_scale,
                             ") to ", request.imgsz, " px; --profile-imgsz ", request.imgsz, " measures at full size"));
  if (!cuda && plan.gpu_target)
    plan.notes.push_back("no CUDA device here: activations measured on the CPU (mixed precision as CPU bfloat16 "
                         "autocast); CUDA context and allocator overhead are typical values, not measured");
  if (!plan.gpu_target && request.amp)
    plan.notes.push_back("mixed precision applies to CUDA training only: a CPU run trains in float32, judged so");
  if (cuda && plan.cuda_context > 0)
    plan.notes.push_back(cat("device memory in use outside this process's allocator (CUDA context and other processes): ",
                             format_bytes(plan.cuda_context)));
  plan.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  return plan;
}

BatchChoice choose_batch(const ChooseBatchRequest& request) {
  PlanRequest p;
  p.model = request.model;
  p.classes = request.classes;
  p.stride4 = request.stride4;
  p.imgsz = request.imgsz;
  p.batch = 1;
  p.nominal_batch = request.nominal_batch;
  p.amp = request.amp;
  p.optimizer = request.optimizer;
  p.ema = request.ema;
  p.device = normalised(request.device).str();
  p.memory_bytes = request.memory_bytes;
  p.memory_fraction = request.memory_fraction;
  p.boxes_per_image = std::max<int64_t>(request.max_boxes, 1);
  p.workers = request.workers;
  p.both_precisions = false;
  const MemoryPlan plan = plan_memory(p);
  const bool amp = request.amp && plan.gpu_target;
  BatchChoice c;
  c.breakdown = amp ? plan.amp : plan.fp32;
  c.memory = plan.memory;
  c.budget = plan.budget;
  c.fits = c.breakdown.max_batch > 0;
  c.batch = std::max<int64_t>(1, std::min(c.breakdown.max_batch, request.nominal_batch));
  c.predicted_peak = predicted_peak(c.breakdown, c.batch, request.nominal_batch);
  return c;
}

int64_t auto_batch(const RunConfig& config, const Split& train_split, int64_t classes, const c10::Device& device,
                   bool resumed) {
  if (!config.auto_batch || resumed) return config.batch;
  std::vector<int64_t> counts;
  for (const auto& image : train_split.images) counts.push_back(static_cast<int64_t>(image.annotations.size()));
  std::sort(counts.rbegin(), counts.rend());
  int64_t boxes = counts.empty() ? 1 : counts.front();
  if (config.augment.mosaic > 0) {  // a mosaic joins four images: up to their four largest counts
    boxes = 0;
    for (std::size_t i = 0; i < counts.size() && i < 4; ++i) boxes += counts[i];
  }
  ChooseBatchRequest r;
  r.model = config.model;
  r.classes = classes;
  r.stride4 = config.stride4;
  r.imgsz = augment::multi_scale_max(config.imgsz, config.augment.multi_scale);  // the largest batch side
  r.max_boxes = std::max<int64_t>(boxes, 1);
  r.nominal_batch = config.nominal_batch;
  r.amp = config.amp;
  r.ema = config.ema;
  r.optimizer = config.optimizer;
  r.workers = config.workers;
  r.device = device;
  r.memory_fraction = config.memory_fraction;
  if (device.is_cuda() && config.gpu_memory_fraction > 0)
    r.memory_fraction = std::min(r.memory_fraction, config.gpu_memory_fraction);
  if (!device.is_cuda() && config.cache != "none") {
    // On the CPU the image cache will share the RAM with the batch: planned without it.
    const uint64_t available = available_ram_bytes();
    const augment::CachePlan cache = augment::plan_cache(train_split, config.imgsz, config.cache);
    if (config.cache != "auto" || augment::auto_cache_fits(cache.bytes, available, 1))
      r.memory_bytes = available > cache.bytes ? available - cache.bytes : 1;
  }
  log_info("batch auto: profiling ", config.model, " at ", r.imgsz, " px", r.imgsz != config.imgsz ? " (the largest multi-scale size)" : "", " with ", r.max_boxes,
           " boxes per image on ", device.str(), "...");
  const BatchChoice c = guard_torch("choosing the batch size", [&] { return choose_batch(r); });
  if (device.is_cuda()) compat::cuda_empty_cache();
  const int64_t accumulate = accumulation(c.batch, config.nominal_batch);
  const double margin = c.budget > c.predicted_peak ? static_cast<double>(c.budget - c.predicted_peak) : 0.0;
  if (!c.fits)
    log_warn("batch auto: even batch 1 is predicted at ", format_bytes(c.predicted_peak), ", over the budget of ",
             format_bytes(c.budget), " (", r.memory_fraction, " x ", format_bytes(c.memory),
             "); training with batch 1 (out-of-memory recovery cannot go lower): lower imgsz or use a smaller model");
  else
    log_info("batch auto: batch ", c.batch, " x ", accumulate, " accumulation (nominal ", config.nominal_batch,
             "): predicted peak ", format_bytes(c.predicted_peak), " of a budget of ", format_bytes(c.budget), " (",
             r.memory_fraction, " x ", format_bytes(c.memory), device.is_cuda() ? " device memory" : " available RAM",
             "), margin ", format_bytes(static_cast<uint64_t>(margin)), " (",
             static_cast<int>(std::lround(100.0 * margin / std::max(1.0, static_cast<double>(c.budget)))), "%)");
  return c.batch;
}

}  // namespace detkit::train

#include "train/trainer.h"

#include <torch/utils.h>

#include <chrono>
#include <limits>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "augment/loader.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/text.h"
#include "core/torch/compat.h"
#include "core/torch/runtime.h"
#include "data/dataset.h"
#include "infer/predict.h"
#include "models/checkpoint.h"
#include "models/loss.h"
#include "models/sync_batch_norm.h"
#include "models/weights_import.h"
#include "models/yolo.h"
#include "train/evaluate.h"
#include "train/guardrails.h"
#include "train/lr_find.h"
#include "train/optimizer_step.h"
#include "train/overlapped_average.h"
#include "train/plan.h"
#include "train/process_group.h"
#include "train/schedule.h"
#include "train/setup.h"

namespace detkit::train {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// A simulated out-of-memory error carries the same type and text as the translated real one.
[[noreturn]] void throw_simulated_oom() {
  throw OutOfMemoryError({"training step ran out of memory", "CUDA out of memory (simulated by inject_oom)",
                          "use a smaller batch or image size, enable mixed precision (amp=true), or free the device"});
}

// The EMA of the weights and buffers (BatchNorm statistics included), with a decay that ramps up from 0 so
// the average is not dominated by the random initial weights.
struct Ema {
  models::YoloDetector model{nullptr};
  double decay = 0.9999;
  int64_t updates = 0;

  void update(models::YoloDetector& source) {
    torch::NoGradGuard no_grad;
    ++updates;
    const double d = decay * (1.0 - std::exp(-static_cast<double>(updates) / 2000.0));
    // Fused over all tensors (one kernel launch per op on a GPU instead of two per parameter); the same
    // arithmetic as a loop of mul_ and add_. No detach(): under NoGradGuard nothing is recorded, and each
    // detach would be one more operator per parameter for the host to dispatch.
    std::vector<at::Tensor> dst = model->parameters(), src = source->parameters(), dst_counts, src_counts;
    auto dst_buffers = model->buffers(), src_buffers = source->buffers();
    for (std::size_t i = 0; i < dst_buffers.size(); ++i) {
      (dst_buffers[i].is_floating_point() ? dst : dst_counts).push_back(dst_buffers[i]);
      (src_buffers[i].is_floating_point() ? src : src_counts).push_back(src_buffers[i]);
    }
    at::_foreach_mul_(dst, d);
    at::_foreach_add_(dst, src, 1.0 - d);
    if (!dst_counts.empty()) {  // BatchNorm's batch counters, copied (as two fused operators, not one per layer)
      at::_foreach_zero_(dst_counts);
      at::_foreach_add_(dst_counts, src_counts);
    }
  }
};

void copy_weights(models::YoloDetector& from, models::YoloDetector& to) {
  torch::NoGradGuard no_grad;
  auto a = from->parameters(), b = to->parameters();
  for (std::size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  auto c = from->buffers(), d = to->buffers();
  for (std::size_t i = 0; i < c.size(); ++i) d[i].copy_(c[i]);
}

// Sums of one epoch's per-batch figures (kept in checkpoints, so a run resumed mid-epoch reports the whole
// epoch).
struct EpochTotals {
  double box = 0, cls = 0, dfl = 0;  // loss terms, weighted by images
  double score_sum = 0;              // distributed: this batch's target-score sum (not saved)
  int64_t images = 0, batches = 0;
  double data_wait = 0, seconds = 0;
  double gradient_wait = 0;  // distributed: seconds after backward waiting for the gradients' average
  uint64_t peak_memory = 0;

  nlohmann::json to_json() const {
    return {{"box", box}, {"cls", cls}, {"dfl", dfl}, {"images", images}, {"batches", batches},
            {"data_wait", data_wait}, {"gradient_wait", gradient_wait}, {"seconds", seconds}, {"peak_memory", peak_memory}};
  }
  static EpochTotals from_json(const nlohmann::json& j) {
    EpochTotals t;
    t.box = j.value("box", 0.0);
    t.cls = j.value("cls", 0.0);
    t.dfl = j.value("dfl", 0.0);
    t.images = j.value("images", int64_t{0});
    t.batches = j.value("batches", int64_t{0});
    t.data_wait = j.value("data_wait", 0.0);
    t.gradient_wait = j.value("gradient_wait", 0.0);
    t.seconds = j.value("seconds", 0.0);
    t.peak_memory = j.value("peak_memory", uint64_t{0});
    return t;
  }
};

enum class BatchOutcome { ok, non_finite };

class Trainer {
 public:
  explicit Trainer(const TrainRequest& request);
  TrainResult run();

 private:
  void prepare_run_dir();
  void build_optimizer();
  void apply_schedule(int64_t iteration, int64_t epoch);
  BatchOutcome train_batch(const augment::Batch& batch, int64_t iteration, bool last_of_step, EpochTotals& totals);
  std::vector<double> agree_before_backward(double score_sum, double images, bool skip);
  BatchOutcome run_chunks(const at::Tensor& images, const at::Tensor& targets, int64_t pieces, int64_t iteration,
                          EpochTotals& totals);
  void scale_batch_gradients(double factor);
  bool optimizer_step(EpochTotals& totals);
  void save_grads();
  void restore_grads();
  nlohmann::json meta(int64_t epoch, int64_t batch_in_epoch, const EpochTotals& totals) const;
  void checkpoint(int64_t epoch, int64_t batch_in_epoch, const EpochTotals& totals, bool best);
  void restore(const std::string& bytes, const std::string& source, bool counters_too);
  void rollback(const std::string& what, const std::string& why, int64_t epoch);
  void event(const std::string& kind, const std::string& message, int64_t epoch, int64_t batch);
  void write_results_csv() const;
  void fit_time_limit(int64_t epoch, double elapsed, int64_t epochs_done);
  void join_distributed_job();
  Validation validate_on_every_rank(models::YoloDetector& model, const infer::PredictOptions& options, bool& interrupted);
  bool main_rank() const { return !group_ || group_->rank() == 0; }
  int64_t world_size() const { return group_ ? group_->world_size() : 1; }
  RunConfig global_config() const;
  std::string memory_text() const;
  uint64_t memory_now() const;

  TrainRequest request_;
  RunConfig config_;
  const Dataset& dataset_;
  const Split* train_split_ = nullptr;
  const Split* val_split_ = nullptr;
  c10::Device device_{c10::kCPU};
  fs::path run_dir_;
  std::vector<std::string> class_names_;

  models::YoloDetector model_{nullptr};
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> grad_backup_;
  std::unique_ptr<models::DetectionLoss> loss_;
  std::unique_ptr<augment::Loader> train_loader_, val_loader_;
  std::unique_ptr<LrSchedule> schedule_;

  // Distributed training (train/process_group.h): every rank runs this same loop on its shard of each
  // global batch; the ranks agree after every batch (out of memory, non-finite loss, Ctrl-C, the loss
  // normaliser and totals) and average gradients once per optimizer step (during the backward pass of its
  // last batch with dist_overlap, else after it), so the weights stay identical. Every rank validates its
  // share of the images; rank 0 alone writes files and shows progress.
  DistributedEnv dist_;
  std::unique_ptr<ProcessGroup> group_;
  std::unique_ptr<OverlappedGradientAverage> overlap_;  // dist_overlap: gradients averaged during backward
  bool overlap_reported_ = false;                        // the first step's overlap was logged
  // The batch being trained (and, in optimizer_step, the step's last batch) averages its gradients during
  // backward (overlap_, the last batch of an optimizer step; see train_batch).
  bool reduce_in_backward_ = false;
  // When earlier batches of the step left gradients, such a batch scales its loss by the global normaliser
  // agreed before backward (not possible for a batch split after running out of memory: train_batch).
  bool prescale() const { return reduce_in_backward_ && accumulated_ > 0; }
  bool agreed_before_backward_ = false;  // this attempt joined agree_before_backward
  bool skipped_everywhere_ = false;      // that agreement made every rank skip backward
  bool interrupt_agreed_ = false;  // Ctrl-C seen by any rank at the last agreement
  int64_t step_images_ = 0;        // images of the last batch over all ranks

  bool autocast_ = false, bf16_ = false;
  LossScaler scaler_;  // fp16 dynamic loss scaling (enabled only for fp16 autocast)

  int64_t accumulate_ = 1;
  int64_t accumulated_ = 0;  // batches whose gradients wait for the next optimizer step
  int64_t batches_per_epoch_ = 0;
  int64_t split_ = 1;        // chunks per batch (grows after out-of-memory)
  double lr_scale_ = 1;      // guardrail factor on the schedule
  double current_lr_ = 0;

  // Counters (restored on resume).
  int64_t start_epoch_ = 0, start_batch_ = 0;
  int64_t optimizer_steps_ = 0, samples_seen_ = 0;
  double best_fitness_ = -1;
  int64_t best_epoch_ = -1;
  nlohmann::json best_metrics_;
  int64_t evals_without_improvement_ = 0;
  nlohmann::json history_ = nlohmann::json::array();
  EpochTotals resumed_totals_;

  // Guardrails.
  int64_t skipped_steps_ = 0, consecutive_skips_ = 0, rollbacks_ = 0, oom_events_ = 0;
  std::set<int64_t> inject_oom_, inject_oom_backward_, inject_nonfinite_;
  LossWatch loss_watch_;
  std::string last_good_;  // serialised checkpoint of the last completed epoch
  nlohmann::json events_ = nlohmann::json::array();
};

Trainer::Trainer(const TrainRequest& request) : request_(request), config_(request.config), dataset_(*request.dataset) {
  DETKIT_ASSERT(request.dataset != nullptr, "train() needs a dataset");
  train_split_ = &training_split(dataset_, request.train_split);
  if (!request.val_split.empty()) {
    val_split_ = dataset_.find_split(request.val_split);
    if (!val_split_ || val_split_->images.empty())
      throw UsageError({cat("the dataset has no validation images in split '", request.val_split, "'"), "",
                        "name the validation split with --val-split, or train without one with --val-split ''"});
  }
  for (const auto& c : dataset_.categories) class_names_.push_back(c.name);
  dist_ = request.distributed;
  if (config_.inject_rank < 0 || config_.inject_rank == dist_.rank) {
    inject_oom_ = parse_step_list("inject_oom", config_.inject_oom);
    inject_oom_backward_ = parse_step_list("inject_oom_backward", config_.inject_oom_backward);
    inject_nonfinite_ = parse_step_list("inject_nonfinite", config_.inject_nonfinite);
  }
  device_ = resolve_device(config_.device);
  // One GPU per local rank unless the configuration names one.
  if (dist_.active() && device_.is_cuda() && (config_.device == "auto" || config_.device == "cuda"))
    device_ = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(dist_.local_rank));
}

void Trainer::prepare_run_dir() {
  if (!main_rank()) {  // the other ranks write nothing; a resumed run reads its checkpoint from the same path
    run_dir_ = request_.resume;
    return;
  }
  if (!request_.resume.empty()) {
    run_dir_ = request_.resume;
  } else {
    run_dir_ = fresh_numbered_directory(config_.project, config_.name);
    ensure_directory(run_dir_ / "weights");
  }
  ensure_directory(run_dir_ / "weights");
  if (!request_.environment_report.empty()) write_file_atomic(run_dir_ / "environment.txt", request_.environment_report);
  if (!request_.data_report.empty()) write_file_atomic(run_dir_ / "data-check.txt", request_.data_report);
  if (!request_.data_report_json.empty()) write_file_atomic(run_dir_ / "data-check.json", request_.data_report_json);
}

// The configuration as one process training the global batch sees it: batch is per rank, so accumulation
// and weight-decay scaling count batch x world size images per batch.
RunConfig Trainer::global_config() const {
  RunConfig global = config_;
  global.batch = config_.batch * world_size();
  return global;
}

void Trainer::join_distributed_job() {
  if (!dist_.active()) return;
  if (config_.lr0_auto && dist_.world_size > 1)
    throw ConfigError({"lr0: auto is not available in distributed training",
                       "the learning-rate range test runs in one process",
                       "find the rate first with 'detkit lr-find' (one process) and set lr0 to it"});
  set_log_prefix(cat("[rank ", dist_.rank, "] "));
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(config_.dist_timeout * 1000));
  const CommBackend backend = choose_backend(config_.dist_backend, device_);
  if (device_.is_cuda()) compat::cuda_set_device(device_.index());
  group_ = ProcessGroup::connect(dist_, timeout, backend, device_);
  if (!main_rank() && log_level() >= LogLevel::info) set_log_level(LogLevel::warn);  // rank 0 narrates
  log_info("distributed training: ", dist_.world_size, dist_.world_size == 1 ? " rank (" : " ranks (", backend_name(backend),
           ") through ", dist_.master_addr, ":", dist_.master_port, config_.sync_bn ? ", SyncBatchNorm" : "");
}

// Distributed validation: every rank predicts its shard of the validation split (the loader cuts each
// global batch across ranks and keeps every image), the detections are gathered in one collective (a
// table summed from zero-padded parts), and rank 0 scores them in the split's image order, the order one
// process predicts in, so the metrics are those of one process. `interrupted` is agreed: a Ctrl-C on any
// rank during prediction stops all.
Validation Trainer::validate_on_every_rank(models::YoloDetector& model, const infer::PredictOptions& options,
                                           bool& interrupted) {
  Validation v;
  bool stopped = false;
  try {
    v = validate(model, *val_loader_, device_, dataset_, *val_split_, options, /*score=*/false);
  } catch (const InterruptedError&) {
    stopped = true;
  }
  const auto w = static_cast<std::size_t>(world_size()), rank = static_cast<std::size_t>(group_->rank());
  std::vector<double> counts(w + 1, 0.0);
  counts[0] = stopped ? 1 : 0;
  counts[rank + 1] = static_cast<double>(v.detections.size());
  counts = group_->sum(counts);
  interrupted = counts[0] > 0;
  if (interrupted) return v;
  int64_t total = 0, offset = 0;
  for (std::size_t r = 0; r < w; ++r) {
    if (r == rank) offset = total;
    total += static_cast<int64_t>(counts[r + 1]);
  }
  std::vector<CocoDetection> all;
  if (total > 0) {
    at::Tensor table = at::zeros({total, 7}, at::kDouble);
    auto rows = table.accessor<double, 2>();
    for (std::size_t i = 0; i < v.detections.size(); ++i) {
      const CocoDetection& d = v.detections[i];
      const int64_t row = offset + static_cast<int64_t>(i);
      const double values[7] = {static_cast<double>(d.image_id), static_cast<double>(d.category_id), d.x, d.y, d.w, d.h, d.score};
      for (int c = 0; c < 7; ++c) rows[row][c] = values[c];
    }
    group_->sum_(table);
    if (main_rank()) {
      for (int64_t row = 0; row < total; ++row) {
        CocoDetection d;
        d.image_id = static_cast<int64_t>(rows[row][0]);
        d.category_id = static_cast<int64_t>(rows[row][1]);
        d.x = rows[row][2];
        d.y = rows[row][3];
        d.w = rows[row][4];
        d.h = rows[row][5];
        d.score = rows[row][6];
        all.push_back(d);
      }
    }
  }
  if (!main_rank()) return v;
  // Each image was predicted by one rank, its detections in order: a stable sort by the image's place in
  // the split restores one process's order.
  std::map<int64_t, std::size_t> position;
  for (std::size_t i = 0; i < val_split_->images.size(); ++i) position[val_split_->images[i].id] = i;
  std::stable_sort(all.begin(), all.end(),
                   [&](const CocoDetection& a, const CocoDetection& b) { return position[a.image_id] < position[b.image_id]; });
  v.detections = std::move(all);
  v.coco = evaluate_coco(split_ground_truth(dataset_, *val_split_), v.detections, "split '" + val_split_->name + "'",
                         "predictions");
  return v;
}

void Trainer::build_optimizer() {
  OptimizerSetup setup = make_optimizer(model_, global_config(), accumulate_);
  optimizer_ = std::move(setup.optimizer);
  params_ = std::move(setup.params);
}

void Trainer::apply_schedule(int64_t iteration, int64_t epoch) {
  const ParamGroup kinds[] = {ParamGroup::weights, ParamGroup::norms, ParamGroup::biases};
  const double momentum = schedule_->momentum(iteration);
  for (std::size_t g = 0; g < optimizer_->param_groups().size(); ++g) {
    const double lr = schedule_->lr(kinds[g], iteration, epoch) * lr_scale_;
    if (g == 0) current_lr_ = lr;
    set_group_hyperparameters(*optimizer_, config_, g, lr, momentum);
  }
}

void Trainer::save_grads() {
  grad_backup_.clear();
  if (accumulated_ == 0) return;  // nothing accumulated: restoring means zeroing
  for (const auto& p : params_) grad_backup_.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
}

void Trainer::restore_grads() {
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor grad = params_[i].mutable_grad();
    if (!grad.defined()) continue;
    if (i < grad_backup_.size() && grad_backup_[i].defined()) grad.copy_(grad_backup_[i]);
    else grad.zero_();
  }
}

// Forward and backward of the batch in `pieces` near-equal parts (1 normally; more after running out of
// memory), the gradients adding up.
BatchOutcome Trainer::run_chunks(const at::Tensor& images, const at::Tensor& targets, int64_t pieces, int64_t iteration,
                                 EpochTotals& totals) {
  const int64_t n = images.size(0);
  const at::Tensor owner = targets.select(1, 0);
  double box = 0, cls = 0, dfl = 0;
  bool non_finite = false;
  for (int64_t piece = 0; piece < pieces; ++piece) {
    const int64_t begin = piece * n / pieces, size = (piece + 1) * n / pieces - begin;
    const at::Tensor part = images.narrow(0, begin, size);
    at::Tensor part_targets = targets.index({(owner >= begin).logical_and(owner < begin + size)}).clone();
    if (part_targets.numel() > 0) part_targets.select(1, 0).sub_(static_cast<double>(begin));
    const models::LossTerms terms = forward_loss(model_, *loss_, part, part_targets, autocast_);
    // Simulated failures fire once, at the first chunk of their batch, after the forward pass (where a
    // real one usually strikes).
    if (begin == 0 && inject_oom_.erase(iteration)) throw_simulated_oom();
    // Alone, each piece's loss is normalised by its own target-score sum; in a distributed job the sum
    // of the pieces is backpropagated and the gradient divided by the global batch's score sum afterwards
    // (train_batch), or, with prescale(), the loss multiplied by the same factor before backward: exactly
    // the gradient of one process with the whole global batch.
    at::Tensor total = group_ ? terms.unnormalized : terms.total;
    if (begin == 0 && inject_nonfinite_.erase(iteration)) total = total * std::numeric_limits<double>::quiet_NaN();
    if (prescale()) {
      // The last batch of a step whose earlier batches left gradients here: its gradient joins them
      // already scaled, so backward can average the sum. The ranks agree on the normaliser (and on
      // skipping backward when any rank's loss is not finite or its forward failed) before backward.
      const at::Tensor numbers = at::cat({total.detach().to(at::kDouble).reshape({1}),
                                          terms.score_sum.detach().to(at::kDouble).reshape({1})}).to(at::kCPU);
      const double* n = numbers.data_ptr<double>();
      const bool finite = std::isfinite(n[0]);
      const std::vector<double> all = agree_before_backward(finite ? n[1] : 0.0, static_cast<double>(size), !finite);
      if (all[2] > 0) return BatchOutcome::non_finite;
      total = total * (static_cast<double>(world_size()) * all[1] / std::max(all[0], 1.0));
    }
    // Backward is queued before the numbers are read, so the device goes from forward to backward without
    // waiting for the host (except for prescale()'s agreement, once per optimizer step); a non-finite loss
    // leaves non-finite gradients, which the caller discards (restore_grads). Then one device-to-host copy
    // for the numbers the step needs.
    const auto as_double = [](const at::Tensor& t) { return t.detach().to(at::kDouble).reshape({1}); };
    const at::Tensor pending = at::cat({as_double(total), as_double(terms.box), as_double(terms.cls),
                                        as_double(terms.dfl), as_double(terms.score_sum)});
    const at::Tensor backpropagated = scaler_.enabled() ? total * scaler_.scale() : total;
    // Distributed with dist_overlap: the last piece's backward averages the batch's gradients as they come.
    if (reduce_in_backward_ && piece == pieces - 1) overlap_->arm(backpropagated);
    // inject_oom_backward: raised by a hook on the gradient of the parameter halfway through the list, once
    // the later layers' gradients are complete (averaging in backward: once some buckets have started).
    struct RemovedHook {
      at::Tensor tensor;
      unsigned index = 0;
      ~RemovedHook() {
        if (tensor.defined()) tensor.remove_hook(index);
      }
    } failing_hook;
    if (begin == 0 && !params_.empty() && inject_oom_backward_.erase(iteration)) {
      failing_hook.tensor = params_[params_.size() / 2];
      failing_hook.index = failing_hook.tensor.register_hook([](const at::Tensor&) { throw_simulated_oom(); });
    }
    backpropagated.backward();
    if (autocast_) compat::clear_autocast_cache();
    const at::Tensor values = pending.to(at::kCPU);
    const double* v = values.data_ptr<double>();
    if (!std::isfinite(v[0])) {
      // With SyncBatchNorm the other ranks' remaining pieces join this rank's forward collectives, so it
      // runs them too (their gradients are discarded with this one's); otherwise it stops here.
      non_finite = true;
      if (group_ && config_.sync_bn) continue;
      return BatchOutcome::non_finite;
    }
    box += v[1] * static_cast<double>(size);
    cls += v[2] * static_cast<double>(size);
    dfl += v[3] * static_cast<double>(size);
    totals.score_sum += v[4];
  }
  if (non_finite) return BatchOutcome::non_finite;
  totals.box += box;
  totals.cls += cls;
  totals.dfl += dfl;
  return BatchOutcome::ok;
}

// Runs `fn`; an out-of-memory failure (real, translated by rethrow_as_detkit_error, or simulated) is
// returned as true, anything else is rethrown translated.
template <class Fn>
bool out_of_memory_in(const std::string& doing, Fn&& fn) {
  try {
    guard_torch(doing, fn);
    return false;
  } catch (const OutOfMemoryError&) {
    return true;
  }
}

// One collective between forward and backward (prescale()): sums of the target-score sums, the images, and
// the ranks that must skip backward. Every rank joins it once per attempt, whether or not its forward pass
// ran or succeeded (train_batch joins for a rank that did not get here).
std::vector<double> Trainer::agree_before_backward(double score_sum, double images, bool skip) {
  // Marked joined only once the sum is done: running out of device memory while staging the numbers
  // leaves this rank to join from train_batch, as after an out-of-memory forward pass.
  std::vector<double> all = group_->sum({score_sum, images, skip ? 1.0 : 0.0});
  agreed_before_backward_ = true;
  skipped_everywhere_ = all[2] > 0;
  return all;
}

BatchOutcome Trainer::train_batch(const augment::Batch& batch, int64_t iteration, bool last_of_step, EpochTotals& totals) {
  const TrainingInput input = training_input(batch, config_, device_, iteration);
  const at::Tensor& images = input.images;
  const at::Tensor& targets = input.targets;
  const int64_t local_images = images.size(0);
  step_images_ = local_images;
  // With SyncBatchNorm every rank's forward pass joins collectives, so all must run the same number of
  // pieces, each with at least one image; a rank whose samples all failed to load makes all skip.
  int64_t fewest_images = local_images;
  if (group_ && config_.sync_bn) fewest_images = -group_->max(-local_images);
  save_grads();
  for (;;) {
    BatchOutcome outcome = BatchOutcome::ok;
    EpochTotals attempt;
    const int64_t pieces = std::min(split_, fewest_images);
    // Decided from what every rank knows alike (the step's position, the agreed split, the batches
    // accumulated), so all ranks take the same path. A split batch (after running out of memory) cannot
    // prescale, as its normaliser is known only after all its passes: when earlier batches of the step
    // left gradients, it is averaged after backward (optimizer_step).
    reduce_in_backward_ = overlap_ && last_of_step && (split_ == 1 || accumulated_ == 0);
    agreed_before_backward_ = skipped_everywhere_ = false;
    const bool oom = pieces > 0 &&
                     out_of_memory_in("training step", [&] { outcome = run_chunks(images, targets, pieces, iteration, attempt); });
    if (oom && group_ && config_.sync_bn)
      // The other ranks are inside this pass's SyncBatchNorm collectives, which this rank left: there is no
      // common point to retry from, so the job stops (the others' next collective fails at once).
      throw OutOfMemoryError({cat("rank ", group_->rank(), " ran out of memory in a training step with sync_bn=true"),
                              "with SyncBatchNorm every rank's forward and backward pass joins collectives, so the "
                              "ranks cannot redo the step in smaller passes together",
                              "lower batch (or imgsz) and resume, or set sync_bn=false: then an out-of-memory step is "
                              "redone on every rank in smaller passes"});
    // Every rank joins the same gradient all-reduces whether its pass succeeded, stopped early or never ran;
    // a failed pass's sums are discarded below on every rank together (restore_grads).
    if (prescale() && !agreed_before_backward_) agree_before_backward(0, 0, oom);  // no images, or out of memory first
    if (reduce_in_backward_ && !skipped_everywhere_) {  // (no rank ran backward: nothing to average)
      const auto wait_start = clock_type::now();
      overlap_->finish();
      totals.gradient_wait += seconds_since(wait_start);
      if (!overlap_reported_ && !oom && outcome == BatchOutcome::ok) {
        overlap_reported_ = true;
        log_info("distributed training: the first step averaged ", overlap_->started_in_backward(), " of ",
                 overlap_->buckets(), " gradient buckets during backward",
                 overlap_->unused_parameters() > 0 ? cat(" (", overlap_->unused_parameters(), " parameters unused)") : "");
      }
    }
    bool any_oom = oom, any_non_finite = !oom && outcome == BatchOutcome::non_finite;
    int64_t oom_ranks = oom ? 1 : 0;
    if (group_) {
      // One collective for everything the ranks must agree on after a batch.
      const std::vector<double> all =
          group_->sum({oom ? 1.0 : 0.0, outcome == BatchOutcome::non_finite ? 1.0 : 0.0, interrupt_requested() ? 1.0 : 0.0,
                       attempt.score_sum, static_cast<double>(pieces > 0 ? local_images : 0), attempt.box, attempt.cls,
                       attempt.dfl});
      oom_ranks = static_cast<int64_t>(all[0]);
      any_oom = all[0] > 0;
      any_non_finite = !any_oom && all[1] > 0;
      interrupt_agreed_ = all[2] > 0;
      if (!any_oom && !any_non_finite) {
        step_images_ = static_cast<int64_t>(all[4]);
        // Each rank backpropagated its unnormalised loss; averaging over W ranks then gives the gradient of
        // the global batch's loss: sum / max(global score sum, 1) * global images (prescaled already when
        // agreed before backward).
        if (!prescale()) scale_batch_gradients(static_cast<double>(world_size()) * all[4] / std::max(all[3], 1.0));
        attempt.box = all[5];
        attempt.cls = all[6];
        attempt.dfl = all[7];
      }
    }
    if (!any_oom) {
      if (any_non_finite) {
        restore_grads();
        return BatchOutcome::non_finite;
      }
      totals.box += attempt.box;
      totals.cls += attempt.cls;
      totals.dfl += attempt.dfl;
      return BatchOutcome::ok;
    }
    // Release what the failed attempt held, then redo the same batch in smaller pieces: gradients add
    // up over the pieces, so the step the optimizer takes is the same.
    if (autocast_) compat::set_autocast(true, false);
    restore_grads();
    if (device_.is_cuda()) compat::cuda_empty_cache();
    ++oom_events_;
    // Every rank decides from the same numbers, so all split together (or all give up).
    const int64_t rows = group_ ? config_.batch : images.size(0);
    const int64_t micro = (rows + split_ - 1) / split_;
    const int64_t epoch = iteration / std::max<int64_t>(batches_per_epoch_, 1);
    if (micro <= 1 || (split_ << 1) > (int64_t{1} << config_.oom_retries)) {
      event("out_of_memory", cat("out of memory with a micro-batch of ", micro, " images; no retries left"), epoch, batch.number);
      throw OutOfMemoryError({cat("training ran out of memory at epoch ", epoch + 1, ", batch ", batch.number + 1,
                                  ", even with a micro-batch of ", micro, " image(s)"),
                              cat("the micro-batch was halved ", oom_events_ - 1, " time(s) already (oom_retries=",
                                  config_.oom_retries, ")"),
                              "lower imgsz or use a smaller model; on a GPU enable amp=true, free the device from other "
                              "processes ('detkit doctor' lists them), or estimate what fits with 'detkit plan'"});
    }
    split_ *= 2;
    const int64_t smaller = (rows + split_ - 1) / split_;
    event("out_of_memory",
          cat("out of memory", group_ ? cat(" on ", oom_ranks, " of ", world_size(), " ranks") : std::string(),
              " with a micro-batch of ", micro, " images: retrying the step", group_ ? " on every rank" : "", " with ", smaller,
              " images per pass and ", split_, " passes per batch (effective batch, schedule and optimizer unchanged)"),
          epoch, batch.number);
  }
}

// Multiplies the gradient this batch added (the part since save_grads) by `factor`.
void Trainer::scale_batch_gradients(double factor) {
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    at::Tensor grad = params_[i].mutable_grad();
    if (!grad.defined()) continue;
    if (i < grad_backup_.size() && grad_backup_[i].defined()) grad.sub_(grad_backup_[i]).mul_(factor).add_(grad_backup_[i]);
    else grad.mul_(factor);
  }
}

// Unscales, checks and clips the accumulated gradients, then steps. Returns false when the step was
// skipped for non-finite gradients.
bool Trainer::optimizer_step(EpochTotals& totals) {
  torch::NoGradGuard no_grad;
  // The mean over the ranks, so every rank takes the same step, unless the step's last batch (the one
  // train_batch just trained) averaged in backward.
  if (group_ && !reduce_in_backward_) {
    std::vector<at::Tensor> grads;
    for (auto& p : params_) {
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    const auto wait_start = clock_type::now();
    group_->average(grads);
    totals.gradient_wait += seconds_since(wait_start);
  }
  const double max_norm = config_.grad_clip > 0 ? config_.grad_clip : std::numeric_limits<double>::infinity();
  const bool finite =
      std::isfinite(unscale_clip_step(*optimizer_, params_, scaler_.enabled() ? scaler_.scale() : 1.0, max_norm));
  if (finite) {
    ++optimizer_steps_;
    if (group_ && !config_.sync_bn) {
      // Without SyncBatchNorm each rank's running statistics follow its own images: all take rank 0's (as
      // PyTorch's DDP does), so the EMA, validation and checkpoints agree on every rank. One collective.
      std::vector<at::Tensor> stats;
      for (const auto& b : model_->buffers())
        if (b.is_floating_point()) stats.push_back(b);
      group_->broadcast(stats, 0);
    }
    if (ema_) ema_->update(model_);
  }
  zero_gradients(*optimizer_);
  accumulated_ = 0;
  // With fp16 an overflow is expected now and then: the scaler halves the scale and the skipped step is
  // not a guardrail event.
  return scaler_.update(finite);
}

nlohmann::json Trainer::meta(int64_t epoch, int64_t batch_in_epoch, const EpochTotals& totals) const {
  RunConfig config = config_;
  nlohmann::json j;
  j["format"] = models::kCheckpointFormat;
  j["model"] = config_.model;
  j["class_names"] = class_names_;
  j["classes"] = class_names_.size();
  j["stride4"] = config_.stride4;
  j["imgsz"] = config_.imgsz;
  j["has_ema"] = ema_ != nullptr;
  j["epoch"] = epoch;                    // the epoch in progress (== epochs completed when batch is 0)
  j["batch_in_epoch"] = batch_in_epoch;  // batches of it already trained
  j["epoch_totals"] = totals.to_json();
  j["optimizer_steps"] = optimizer_steps_;
  j["samples_seen"] = samples_seen_;
  j["ema_updates"] = ema_ ? ema_->updates : 0;
  j["lr_scale"] = lr_scale_;
  j["split"] = split_;
  j["world_size"] = world_size();
  j["global_batch"] = config_.batch * world_size();  // images per batch over all ranks (batch_in_epoch counts these)
  j["loss_scale"] = scaler_.scale();
  j["good_scaled_steps"] = scaler_.good_steps();
  j["best_fitness"] = best_fitness_;
  j["best_epoch"] = best_epoch_;
  j["best_metrics"] = best_metrics_;
  j["evals_without_improvement"] = evals_without_improvement_;
  j["history"] = history_;
  j["config"] = config_to_yaml(config_root(config));
  j["torch"] = compat::torch_version();
  return j;
}

void Trainer::checkpoint(int64_t epoch, int64_t batch_in_epoch, const EpochTotals& totals, bool best) {
  if (!main_rank()) {  // the other ranks keep only the rollback target (their weights equal rank 0's)
    if (batch_in_epoch == 0)
      last_good_ = models::serialize_checkpoint(model_, ema_ ? &ema_->model : nullptr, optimizer_.get(),
                                                meta(epoch, batch_in_epoch, totals));
    return;
  }
  const std::string bytes = models::serialize_checkpoint(model_, ema_ ? &ema_->model : nullptr, optimizer_.get(),
                                                 meta(epoch, batch_in_epoch, totals));
  models::write_checkpoint(run_dir_ / "weights" / "last.pt", bytes);
  if (best) models::write_checkpoint(run_dir_ / "weights" / "best.pt", bytes);
  if (batch_in_epoch == 0) last_good_ = bytes;
}

void Trainer::restore(const std::string& bytes, const std::string& source, bool counters_too) {
  const nlohmann::json m = models::restore_checkpoint(bytes, source, model_, ema_ ? &ema_->model : nullptr, optimizer_.get(), device_);
  // Loading may replace the weights' storage with the file's layout: the run's own layout again, so a
  // resumed run computes exactly as an uninterrupted one.
  if (config_.channels_last) {
    models::use_channels_last(model_);
    if (ema_) models::use_channels_last(ema_->model);
  }
  if (m.value("class_names", std::vector<std::string>{}) != class_names_)
    throw UsageError({cat(source, " was trained on other classes than the dataset declares"), "",
                      "resume with the dataset the run started with"});
  optimizer_steps_ = m.value("optimizer_steps", int64_t{0});
  samples_seen_ = m.value("samples_seen", int64_t{0});
  if (ema_) ema_->updates = m.value("ema_updates", int64_t{0});
  best_fitness_ = m.value("best_fitness", -1.0);
  best_epoch_ = m.value("best_epoch", int64_t{-1});
  best_metrics_ = m.value("best_metrics", nlohmann::json());
  evals_without_improvement_ = m.value("evals_without_improvement", int64_t{0});
  history_ = m.value("history", nlohmann::json::array());
  start_epoch_ = m.value("epoch", int64_t{0});
  start_batch_ = m.value("batch_in_epoch", int64_t{0});
  // Resumed with another world size (or batch): the global batch changed, so the position in the epoch is
  // converted through the samples already trained; the epoch's order does not depend on the batch, so
  // at most one global batch of samples is trained twice.
  const int64_t saved_global = m.value("global_batch", config_.batch), global = config_.batch * world_size();
  if (start_batch_ > 0 && saved_global != global) {
    const int64_t samples = start_batch_ * saved_global;
    start_batch_ = std::min(samples / global, batches_per_epoch_);
    log_info("the checkpoint was written with ", saved_global, " images per global batch and this run has ", global,
             ": continuing epoch ", start_epoch_ + 1, " at batch ", start_batch_, " (", samples - start_batch_ * global,
             " sample(s) of it trained again)");
  }
  resumed_totals_ = EpochTotals::from_json(m.value("epoch_totals", nlohmann::json::object()));
  if (counters_too) {
    lr_scale_ = m.value("lr_scale", 1.0);
    split_ = m.value("split", int64_t{1});
    scaler_.restore(m.value("loss_scale", scaler_.scale()), m.value("good_scaled_steps", int64_t{0}));
  }
  accumulated_ = 0;
}

void Trainer::rollback(const std::string& what, const std::string& why, int64_t epoch) {
  if (rollbacks_ >= config_.max_rollbacks)
    throw RunError({cat("training stopped at epoch ", epoch + 1, ": ", what, ", and ", rollbacks_,
                        " rollback(s) with a lower learning rate did not help"),
                    why,
                    "lower lr0 (or raise warmup_epochs), check the labels with 'detkit check', and on a GPU try "
                    "amp=false; then start again (the last good weights are in weights/last.pt)"});
  ++rollbacks_;
  lr_scale_ *= 0.5;
  restore(last_good_, "the last good checkpoint", /*counters_too=*/false);
  zero_gradients(*optimizer_);
  consecutive_skips_ = 0;
  loss_watch_.reset();
  event("rollback",
        cat(what, " (", why, "): rolled back to the end of epoch ", start_epoch_, " and lowered the learning rate to ",
            lr_scale_, " x the schedule (rollback ", rollbacks_, " of at most ", config_.max_rollbacks, ")"),
        epoch, -1);
}

void Trainer::event(const std::string& kind, const std::string& message, int64_t epoch, int64_t batch) {
  if (!main_rank()) return;  // every rank meets the same events; rank 0 reports them
  log_warn(message);
  events_.push_back({{"kind", kind}, {"epoch", epoch + 1}, {"batch", batch + 1}, {"optimizer_steps", optimizer_steps_},
                     {"message", message}});
  write_file_atomic(run_dir_ / "events.json", events_.dump(2) + "\n");
}

void Trainer::write_results_csv() const {
  std::ostringstream csv;
  csv << "epoch,box_loss,cls_loss,dfl_loss,lr,map50,map50_95,seconds,images_per_second,data_wait_share,"
         "peak_memory_bytes,skipped_steps,oom_events,rollbacks,micro_batch,gradient_wait_share\n";
  for (const auto& row : history_) {
    csv << row["epoch"].get<int64_t>();
    for (const char* key : {"box_loss", "cls_loss", "dfl_loss", "lr", "map50", "map50_95", "seconds", "images_per_second",
                            "data_wait_share"}) {
      char value[32];
      std::snprintf(value, sizeof value, "%.6g", row[key].get<double>());
      csv << ',' << value;
    }
    for (const char* key : {"peak_memory_bytes", "skipped_steps", "oom_events", "rollbacks", "micro_batch"})
      csv << ',' << row[key].get<int64_t>();
    char share[32];
    std::snprintf(share, sizeof share, "%.6g", row.value("gradient_wait_share", 0.0));  // absent before it existed
    csv << ',' << share;
    csv << '\n';
  }
  write_file_atomic(run_dir_ / "results.csv", csv.str());
}

// Before epoch `epoch` (0-based; `epochs_done` of them trained by this process in `elapsed` seconds):
// shortens the run so it ends within time_limit minutes of this process's start, at the average pace so
// far (evaluation included). The schedule and close_mosaic then count down to the new last epoch, so a
// short run still decays to the final learning rate and ends without mosaic. Sets config_.epochs to
// `epoch` when not even this epoch fits.
void Trainer::fit_time_limit(int64_t epoch, double elapsed, int64_t epochs_done) {
  const double per_epoch = elapsed / static_cast<double>(std::max<int64_t>(epochs_done, 1));
  const double remaining = config_.time_limit * 60.0 - elapsed;
  const int64_t affordable = epoch + std::max<int64_t>(0, static_cast<int64_t>(remaining / per_epoch));
  int64_t epochs = std::min(request_.config.epochs, affordable);
  if (group_) epochs = -group_->max(-epochs);  // the ranks' clocks differ a little: the shortest plan wins
  if (epochs == config_.epochs) return;
  log_info("time_limit ", config_.time_limit, " min: ", format_duration(per_epoch), " per epoch, so the run ends after epoch ",
           std::max(epochs, epoch), " of the ", request_.config.epochs, " asked for");
  config_.epochs = epochs;
  ScheduleOptions so = schedule_->options();
  so.epochs = epochs;
  schedule_ = std::make_unique<LrSchedule>(so);
  train_loader_->set_run_epochs(epochs);
}

uint64_t Trainer::memory_now() const {
  if (device_.is_cuda()) return compat::cuda_memory(device_.index()).peak_allocated;
  return resident_memory_bytes();
}

std::string Trainer::memory_text() const {
  if (device_.is_cuda()) {
    const auto m = compat::cuda_memory(device_.index());
    return cat("gpu ", format_bytes(m.peak_allocated), "/", format_bytes(m.total));
  }
  return "";  // on the CPU the progress line shows the process's memory already
}

TrainResult Trainer::run() {
  const auto run_start = clock_type::now();
  // A weights file of another scale, or one that cannot be read, fails before any work.
  if (request_.resume.empty() && !config_.weights.empty()) {
    models::check_weights_scale(models::read_architecture(config_.weights), config_.weights, config_.model);
  }
  join_distributed_job();
  // batch: auto (train/plan.h): profiled before the run directory's config.yaml records the batch.
  config_.batch = auto_batch(config_, *train_split_, static_cast<int64_t>(class_names_.size()), device_, !request_.resume.empty());
  if (group_) config_.batch = -group_->max(-config_.batch);  // what fits on every rank
  config_.auto_batch = false;
  prepare_run_dir();
  log_info("run directory: ", run_dir_.string());
  // lr0: auto (train/lr_find.h): a range test of this very recipe, kept in RUN/lr-find; the resolved
  // config.yaml then records the rate it chose.
  if (config_.lr0_auto && request_.resume.empty()) {
    LrFindRequest find;
    find.config = config_;
    find.dataset = &dataset_;
    find.split = train_split_->name;
    find.out_dir = (run_dir_ / "lr-find").string();
    const LrFindResult found = find_learning_rate(find);
    if (found.interrupted) throw InterruptedError({"interrupted during the learning-rate range test (lr0: auto)", "",
                                                   "start the run again, or set lr0 to a number"});
    if (!(found.suggested_lr > 0))
      throw RunError({"the learning-rate range test (lr0: auto) found no usable learning rate",
                      found.notes.empty() ? std::string("no step had a finite loss") : found.notes.front(),
                      "set lr0 to a number, or look at the curve in " + find.out_dir + "/lr_find.png"});
    // Three significant digits: what config.yaml records is then exactly what trains, so a resumed run
    // continues with the same rate.
    config_.lr0 = std::stod(format_significant(found.suggested_lr));
    log_info("lr0: auto chose ", config_.lr0, " (", find.out_dir, "/lr_find.png)");
  }
  config_.lr0_auto = false;
  if (request_.resume.empty() && main_rank()) write_resolved_config(run_dir_, config_);
  if (!request_.environment_report.empty())
    for (const auto& line : split(trim(request_.environment_report), '\n')) log_info("env: ", line);

  const auto classes = static_cast<int64_t>(class_names_.size());
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
  model_ = make_detector(config_, classes, device_);
  // weights=: the starting point of a new run (a resumed one continues from its own checkpoint).
  const ImportResult imported = prepare_starting_point(model_, config_, request_.resume.empty());
  if (!imported.rows.empty() && main_rank()) {
    std::string table = cat("# weights=", config_.weights, ": what became of each tensor (status target <- source)\n");
    for (const auto& row : imported.rows)
      table += cat(row.status, " ", row.target.empty() ? "-" : row.target, " <- ", row.source.empty() ? "-" : row.source, "\n");
    write_file_atomic(run_dir_ / "weights-import.txt", table);
  }
  if (config_.channels_last) models::use_channels_last(model_);
  // After batch: auto's profiling, whose peak must not include cuDNN's trial workspaces.
  if (device_.is_cuda()) compat::set_cudnn_benchmark(config_.cudnn_benchmark);
  if (group_) {
    // Every rank starts from rank 0's weights (equal anyway with the same seed and weights file).
    std::vector<at::Tensor> state = model_->parameters();
    for (const auto& b : model_->buffers()) state.push_back(b);
    {
      torch::NoGradGuard no_grad;
      group_->broadcast(state, 0);
    }
    if (config_.sync_bn) {
      struct GroupSum : models::RankSum {
        explicit GroupSum(ProcessGroup& g) : group(g) {}
        void sum_(at::Tensor& t) override { group.sum_(t); }
        ProcessGroup& group;
      };
      model_->set_sync_batch_norm(std::make_shared<GroupSum>(*group_));
    }
  }
  if (config_.ema) {
    ema_ = std::make_unique<Ema>();
    ema_->model = make_detector(config_, classes, device_);
    ema_->model->eval();
    // The model's layout: the EMA's fused update needs matching strides on a GPU (else one kernel per tensor).
    if (config_.channels_last) models::use_channels_last(ema_->model);
    ema_->decay = config_.ema_decay;
    copy_weights(model_, ema_->model);
  }
  accumulate_ = accumulation(global_config());
  build_optimizer();
  if (group_ && config_.dist_overlap) {
    // Where averaging during backward is not safe or would not pay, gradients are averaged after it.
    //  - SyncBatchNorm: its backward runs collectives of its own on the same group, and a bucket started
    //    at another point of the backward pass on one rank than on another would pair with one of them.
    //  - Gradients on a GPU with Gloo: each bucket would be copied to the host, blocking the backward pass.
    const std::string after_because = config_.sync_bn ? std::string("with sync_bn=true")
                                      : group_->device() != device_ ? cat("with Gloo and gradients on ", device_.str())
                                                                    : std::string();
    if (after_because.empty()) {
      const auto mib = [](double m) { return static_cast<int64_t>(m * static_cast<double>(int64_t{1} << 20)); };
      overlap_ = std::make_unique<OverlappedGradientAverage>(*group_, params_, mib(config_.dist_bucket_mb),
                                                             std::min(mib(config_.dist_bucket_mb), mib(1)));
      log_info("distributed training: gradients averaged during backward in ", overlap_->buckets(),
               " buckets of at most ", config_.dist_bucket_mb, " MiB",
               accumulate_ > 1 ? cat(", in the last of every ", accumulate_, " batches (the others accumulate locally)")
                               : std::string());
    } else {
      log_info("distributed training: gradients averaged after backward, once per optimizer step, ", after_because);
    }
  }
  loss_ = std::make_unique<models::DetectionLoss>(loss_options(config_));

  if (device_.is_cuda()) {
    if (config_.gpu_memory_fraction > 0) compat::cuda_set_memory_fraction(config_.gpu_memory_fraction, device_.index());
    const Precision precision = choose_precision(config_, device_);
    autocast_ = precision.autocast;
    bf16_ = precision.bf16;
    scaler_ = LossScaler(precision.loss_scaling);
  }

  augment::LoaderOptions lo = train_loader_options(config_, device_);
  lo.rank = dist_.rank;
  lo.world_size = world_size();
  train_loader_ = std::make_unique<augment::Loader>(dataset_, *train_split_, lo);
  if (val_split_) {  // distributed: each rank predicts its share of the validation images
    augment::LoaderOptions vo = lo;
    vo.every_sample = true;
    vo.batch = config_.batch * 2;
    vo.shuffle = false;
    vo.augment = false;
    if (lo.cache == "auto" && train_loader_->cache_mode() == "decoded") {
      // One quarter of the free RAM (per rank) for both caches: the validation images get what the training
      // ones leave.
      const augment::CachePlan& taken = train_loader_->cache_plan();
      const auto used =
          static_cast<uint64_t>(static_cast<double>(taken.bytes) * static_cast<double>(world_size()) / augment::kAutoCacheShare);
      const uint64_t left = taken.available > used ? taken.available - used : 0;
      vo.available_ram = std::max<uint64_t>(left, 1);
    }
    val_loader_ = std::make_unique<augment::Loader>(dataset_, *val_split_, vo);
  }
  batches_per_epoch_ = train_loader_->batches_per_epoch();
  ScheduleOptions so;
  so.lr0 = config_.lr0;
  so.lrf = config_.lrf;
  so.momentum = config_.momentum;
  so.warmup_momentum = config_.warmup_momentum;
  so.warmup_bias_lr = config_.warmup_bias_lr;
  so.epochs = config_.epochs;
  so.kind = config_.schedule;
  so.warmup_iterations = warmup_iterations(config_.warmup_epochs, batches_per_epoch_, config_.epochs);
  schedule_ = std::make_unique<LrSchedule>(so);

  // The state before any training is the first rollback target.
  last_good_ = models::serialize_checkpoint(model_, ema_ ? &ema_->model : nullptr, optimizer_.get(), meta(0, 0, {}));
  if (!request_.resume.empty()) {
    const fs::path path = models::resume_checkpoint(run_dir_);
    const std::string bytes = read_file(path);
    restore(bytes, path.string(), /*counters_too=*/true);
    last_good_ = bytes;
    log_info("resuming from ", path.string(), ": epoch ", start_epoch_ + 1, ", batch ", start_batch_, ", ",
             optimizer_steps_, " optimizer steps done");
    if (start_epoch_ >= config_.epochs) log_info("the run had already finished all ", config_.epochs, " epochs");
  }

  const int64_t params = [&] {
    int64_t n = 0;
    for (const auto& p : params_) n += p.numel();
    return n;
  }();
  log_info("training ", config_.model, " (", params, " parameters, ", class_names_.size(), " classes) on ", device_.str(),
           autocast_ ? (bf16_ ? " with bf16 autocast" : " with fp16 autocast and loss scaling") : "", ": ",
           train_split_->images.size(), " training images", val_split_ ? cat(", ", val_split_->images.size(), " validation") : "",
           "; batch ", config_.batch, group_ ? cat(" x ", world_size(), " ranks") : std::string(), " x ", accumulate_,
           " accumulation (nominal ", config_.nominal_batch, "), ",
           batches_per_epoch_, " batches per epoch, ", config_.epochs, " epochs at ", config_.imgsz, " px");

  TrainResult result;
  result.run_dir = run_dir_.string();
  install_interrupt_handler();
  bool stop = false;
  infer::PredictOptions predict_options;
  predict_options.postprocess.conf_threshold = config_.val_conf;
  predict_options.postprocess.iou_threshold = config_.val_iou;
  predict_options.autocast = autocast_;
  predict_options.bf16 = bf16_;

  const int64_t first_epoch_of_run = start_epoch_;
  for (int64_t epoch = start_epoch_; epoch < config_.epochs && !stop;) {
    if (config_.time_limit > 0 && epoch > first_epoch_of_run) {
      fit_time_limit(epoch, seconds_since(run_start), epoch - first_epoch_of_run);
      if (epoch >= config_.epochs) break;
    }
    const auto epoch_start = clock_type::now();
    EpochTotals totals = (epoch == start_epoch_ && start_batch_ > 0) ? resumed_totals_ : EpochTotals{};
    const int64_t first_batch = epoch == start_epoch_ ? start_batch_ : 0;
    start_batch_ = 0;
    if (device_.is_cuda()) compat::cuda_reset_peak(device_.index());
    train_loader_->start_epoch(epoch, first_batch);
    model_->train();
    std::optional<Progress> progress;
    if (main_rank())
      progress.emplace(cat("epoch ", epoch + 1, "/", config_.epochs), static_cast<uint64_t>(batches_per_epoch_ - first_batch),
                       "batch");
    bool rolled_back = false, interrupted = false;
    std::string last_extra;
    int64_t trained_batches = first_batch;
    while (auto batch = train_loader_->next()) {
      const auto step_start = clock_type::now();
      const int64_t iteration = epoch * batches_per_epoch_ + batch->number;
      apply_schedule(iteration, epoch);
      const auto weighted = [&] {
        return totals.box * config_.box_gain + totals.cls * config_.cls_gain + totals.dfl * config_.dfl_gain;
      };
      const double loss_before = weighted(), gradient_wait_before = totals.gradient_wait;
      const bool last_of_step = accumulated_ + 1 >= accumulate_ || batch->number + 1 == batches_per_epoch_;
      const BatchOutcome outcome = train_batch(*batch, iteration, last_of_step, totals);
      const int64_t images = step_images_;  // over all ranks
      samples_seen_ += images;
      trained_batches = batch->number + 1;
      if (outcome == BatchOutcome::non_finite) {
        ++skipped_steps_;
        ++consecutive_skips_;
        event("non_finite_loss", cat("the loss was not finite at epoch ", epoch + 1, ", batch ", batch->number + 1,
                                     ": the batch was skipped (", consecutive_skips_, " in a row)"),
              epoch, batch->number);
        if (consecutive_skips_ >= config_.skip_limit) {
          rollback(cat(consecutive_skips_, " batches in a row had a non-finite loss"),
                   scaler_.enabled() ? "fp16 overflowed, or the learning rate is too high for the batch, or labels are broken"
                                 : "the learning rate is likely too high for the batch, or labels are broken",
                   epoch);
          rolled_back = true;
          break;
        }
      } else {
        consecutive_skips_ = 0;
        totals.images += images;
        ++accumulated_;
        if (last_of_step) {
          if (!optimizer_step(totals)) {
            ++skipped_steps_;
            ++consecutive_skips_;
            event("non_finite_gradient", cat("the gradient was not finite at epoch ", epoch + 1, ", batch ", batch->number + 1,
                                             ": the optimizer step was skipped"),
                  epoch, batch->number);
            if (consecutive_skips_ >= config_.skip_limit) {
              rollback(cat(consecutive_skips_, " steps in a row had non-finite gradients"),
                       "the learning rate is likely too high for the batch, or fp16 overflowed", epoch);
              rolled_back = true;
              break;
            }
          }
        }
        if (!schedule_->in_warmup(iteration)) {
          loss_watch_.add((weighted() - loss_before) / std::max<double>(static_cast<double>(images), 1.0));
          if (loss_watch_.rising()) {
            rollback("the training loss is rising", loss_watch_.describe(), epoch);
            rolled_back = true;
            break;
          }
        }
      }
      totals.batches += 1;
      totals.data_wait += batch->wait_seconds;
      totals.peak_memory = std::max(totals.peak_memory, memory_now());
      const double elapsed = std::max(seconds_since(step_start) + batch->wait_seconds, 1e-9);  // this batch, waiting for it included
      const double n = std::max<double>(static_cast<double>(totals.images), 1.0);
      // Distributed: the share of the step spent waiting for the gradients' average after backward.
      char sync[32] = "";
      if (group_)
        std::snprintf(sync, sizeof sync, " | sync %.0f%%", 100.0 * (totals.gradient_wait - gradient_wait_before) / elapsed);
      char extra[240];
      std::snprintf(extra, sizeof extra, "box %.3f cls %.3f dfl %.3f | lr %.2e | %.1f img/s | wait %.0f%%%s%s%s",
                    totals.box / n, totals.cls / n, totals.dfl / n, current_lr_, static_cast<double>(images) / elapsed,
                    100.0 * batch->wait_seconds / elapsed, sync,
                    device_.is_cuda() ? " | " : "", memory_text().c_str());
      last_extra = extra;
      if (progress) progress->advance(1, extra);
      // Distributed: the flag the ranks agreed on after this batch, so all stop at the same one.
      if ((group_ ? interrupt_agreed_ : interrupt_requested()) && accumulated_ == 0) {
        interrupted = true;
        break;
      }
    }
    if (rolled_back) {  // restore() set start_epoch_ / start_batch_ to the state rolled back to
      epoch = start_epoch_;
      continue;
    }
    totals.seconds += seconds_since(epoch_start);
    if (interrupted) {
      set_interrupt_requested(false);
      checkpoint(epoch, trained_batches, totals, false);
      if (progress) progress->finish("interrupted");
      if (main_rank())
        log_warn("interrupted: saved the state after batch ", trained_batches, " of epoch ", epoch + 1, " in ",
               (run_dir_ / "weights" / "last.pt").string(), "; continue with: detkit train --resume ", run_dir_.string());
      result.interrupted = true;
      break;
    }
    if (progress) progress->finish(last_extra);

    double map50 = -1, map50_95 = -1;
    const bool last_epoch = epoch + 1 == config_.epochs;
    bool improved = false;
    if (val_split_ && ((epoch + 1) % config_.eval_interval == 0 || last_epoch)) {
      Validation v;
      bool validation_interrupted = false;
      models::YoloDetector& evaluated = ema_ ? ema_->model : model_;
      if (group_) {
        v = validate_on_every_rank(evaluated, predict_options, validation_interrupted);
      } else {
        try {
          v = validate(evaluated, *val_loader_, device_, dataset_, *val_split_, predict_options);
        } catch (const InterruptedError&) {
          validation_interrupted = true;
        }
      }
      if (!validation_interrupted && main_rank()) {
        map50 = v.coco.stats[1];
        map50_95 = v.coco.stats[0];
      }
      if (group_) {  // rank 0's result, for the decisions every rank takes alike (best, patience, stop)
        const std::vector<double> agreed =
            group_->sum({validation_interrupted ? 1.0 : 0.0, main_rank() ? map50 : 0.0, main_rank() ? map50_95 : 0.0});
        validation_interrupted = agreed[0] > 0;
        map50 = agreed[1];
        map50_95 = agreed[2];
      }
      if (validation_interrupted) {
        // Ctrl-C during validation: keep the epoch just trained (unevaluated) and stop.
        set_interrupt_requested(false);
        ++epoch;
        checkpoint(epoch, 0, {}, false);
        if (main_rank())
          log_warn("interrupted during validation: saved the state after epoch ", epoch,
                   "; continue with: detkit train --resume ", run_dir_.string());
        result.interrupted = true;
        break;
      }
      if (main_rank())
        log_info("epoch ", epoch + 1, " validation: mAP50-95 ", map50_95, ", mAP50 ", map50, " (", v.predict.images, " images",
                 group_ ? cat(" on rank 0 of ", val_split_->images.size(), " on ", world_size(), " ranks") : std::string(), ", ",
                 format_duration(v.predict.seconds), ")");
      result.final_map50 = map50;
      result.final_map50_95 = map50_95;
      if (map50_95 > best_fitness_) {
        improved = true;
        best_fitness_ = map50_95;
        best_epoch_ = epoch;
        evals_without_improvement_ = 0;
        if (main_rank()) {
          nlohmann::json stats;
          for (std::size_t i = 0; i < 12; ++i) stats[coco_stat_names()[i]] = v.coco.stats[i];
          nlohmann::json per_class;
          for (const auto& [id, ap] : v.coco.per_category_ap) {
            const Category* c = dataset_.find_category(id);
            per_class[c ? c->name : std::to_string(id)] = ap;
          }
          best_metrics_ = {{"epoch", epoch + 1}, {"stats", stats}, {"per_class_AP", per_class}};
        }
      } else {
        ++evals_without_improvement_;
      }
    } else if (!val_split_) {
      improved = true;  // no validation: the latest weights are the best we know
    }
    const double images_per_second = totals.seconds > 0 ? static_cast<double>(totals.images) / totals.seconds : 0;
    history_.push_back({{"epoch", epoch + 1},
                        {"box_loss", totals.box / std::max<double>(static_cast<double>(totals.images), 1.0)},
                        {"cls_loss", totals.cls / std::max<double>(static_cast<double>(totals.images), 1.0)},
                        {"dfl_loss", totals.dfl / std::max<double>(static_cast<double>(totals.images), 1.0)},
                        {"lr", current_lr_},
                        {"map50", map50},
                        {"map50_95", map50_95},
                        {"seconds", totals.seconds},
                        {"images_per_second", images_per_second},
                        {"data_wait_share", totals.seconds > 0 ? totals.data_wait / totals.seconds : 0.0},
                        {"peak_memory_bytes", totals.peak_memory},
                        {"skipped_steps", skipped_steps_},
                        {"oom_events", oom_events_},
                        {"rollbacks", rollbacks_},
                        {"micro_batch", (config_.batch + split_ - 1) / split_},
                        {"gradient_wait_share", totals.seconds > 0 ? totals.gradient_wait / totals.seconds : 0.0}});
    ++epoch;
    checkpoint(epoch, 0, {}, improved);
    if (main_rank()) write_results_csv();
    if (config_.patience > 0 && evals_without_improvement_ >= config_.patience) {
      log_info("stopping early: ", evals_without_improvement_, " evaluations without a better mAP50-95 (patience ",
               config_.patience, "); best was epoch ", best_epoch_ + 1);
      result.stopped_early = true;
      stop = true;
    }
  }

  // The best weights evaluated once more, with everything the report shows: curves, confusion matrix,
  // predictions and a grid of samples (RUN/val).
  if (!main_rank()) {  // the files and the final evaluation are rank 0's
    result.run_dir.clear();
    result.epochs_completed = static_cast<int64_t>(history_.size());
    result.optimizer_steps = optimizer_steps_;
    result.samples_seen = samples_seen_;
    result.seconds = seconds_since(run_start);
    return result;
  }
  if (val_split_ && !result.interrupted && fs::exists(run_dir_ / "weights" / "best.pt")) {
    EvaluateModelRequest final_eval;
    final_eval.model = (run_dir_ / "weights" / "best.pt").string();
    final_eval.dataset = &dataset_;
    final_eval.split = val_split_->name;
    final_eval.batch = config_.batch * 2;
    final_eval.workers = config_.workers;
    final_eval.device = device_.str();
    final_eval.conf = config_.val_conf;
    final_eval.iou = config_.val_iou;
    final_eval.out_dir = (run_dir_ / "val").string();
    evaluate_model(final_eval);
  }

  result.epochs_completed = static_cast<int64_t>(history_.size());
  result.optimizer_steps = optimizer_steps_;
  result.samples_seen = samples_seen_;
  result.best_epoch = best_epoch_;
  if (best_metrics_.is_object()) {
    result.best_map50_95 = best_metrics_["stats"]["AP"].get<double>();
    result.best_map50 = best_metrics_["stats"]["AP50"].get<double>();
  }
  result.skipped_steps = skipped_steps_;
  result.rollbacks = rollbacks_;
  result.oom_events = oom_events_;
  result.micro_batch = (config_.batch + split_ - 1) / split_;
  result.seconds = seconds_since(run_start);
  nlohmann::ordered_json metrics;
  metrics["run_dir"] = result.run_dir;
  metrics["model"] = config_.model;
  metrics["epochs_completed"] = result.epochs_completed;
  metrics["optimizer_steps"] = result.optimizer_steps;
  metrics["samples_seen"] = result.samples_seen;
  metrics["best_epoch"] = best_epoch_ + 1;
  metrics["best"] = best_metrics_;
  metrics["final_map50"] = result.final_map50;
  metrics["final_map50_95"] = result.final_map50_95;
  metrics["skipped_steps"] = skipped_steps_;
  metrics["rollbacks"] = rollbacks_;
  metrics["oom_events"] = oom_events_;
  metrics["micro_batch"] = result.micro_batch;
  metrics["stopped_early"] = result.stopped_early;
  metrics["interrupted"] = result.interrupted;
  metrics["seconds"] = result.seconds;
  write_file_atomic(run_dir_ / "metrics.json", metrics.dump(2) + "\n");
  return result;
}

}  // namespace

TrainResult train(const TrainRequest& request) {
  return guard_torch("training", [&] {
    Trainer trainer(request);
    return trainer.run();
  });
}

}  // namespace detkit::train

// The trainer: a short loop over batches with its duties factored into small parts (schedule, EMA,
// checkpoints, evaluation, guardrails, memory recovery, logging).
//
// What it guarantees
//   - A run directory (config.project/config.name, numbered name2, name3... when taken; the given one when
//     resuming) holding config.yaml (resolved), environment.txt, data-check.txt, results.csv (one row per
//     epoch), events.json (guardrail and out-of-memory events), weights/last.pt and weights/best.pt
//     (models/checkpoint.h; written atomically), and metrics.json at the end. Every file is replaced
//     atomically, so a killed run never leaves a torn one.
//   - Determinism on the CPU: the same config and data give the same weights; a run interrupted (Ctrl-C,
//     or killed after an epoch) and resumed ends with the same weights as one that was not.
//   - Guardrails: a non-finite loss or gradient skips its batch and is counted; skip_limit of them in a
//     row, or a statistically rising loss (train/guardrails.h), roll back to the last good checkpoint and
//     halve the learning rate, saying why; after max_rollbacks a RunError stops the run with the likely
//     causes and fixes.
//   - Out of memory at a step: the step is redone with half the micro-batch and twice the accumulation,
//     so the effective batch, the schedule and the optimizer are unchanged; at most oom_retries halvings.
//   - Ctrl-C: the accumulation window in progress is finished, a checkpoint is written at that batch,
//     and the result says interrupted; `detkit train --resume RUN` continues from that exact batch.
#pragma once

#include "core/torch_plugin.h"

namespace detkit::train {

// Trains as request.config says. Throws UsageError (no such split, no classes), ConfigError, DataError
// (no readable image), RunError (guardrails gave up), OutOfMemoryError (halving could not help).
TrainResult train(const TrainRequest& request);

}  // namespace detkit::train

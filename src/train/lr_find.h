// The learning-rate range test (`detkit lr-find`, and `lr0: auto` before training; docs/lr-find.md).
//
// What it does: builds the detector, optimizer (its three parameter groups, momentum, weight decay,
// gradient clipping), training loader (the augmentation recipe) and precision exactly as the trainer
// would for request.config, then takes up to config.lr_find.steps optimizer steps with the learning rate
// of every group rising geometrically from lr_find.start to lr_find.end, recording the training loss per
// image at each. It stops early when the loss diverges (train/lr_curve.h). The detector is fresh and is
// thrown away: the test changes nothing a later run starts from.
//
// One step is one micro-batch of config.batch images whose loss is multiplied by the gradient
// accumulation (nominal_batch / batch): the loss is summed over images, so this gives the gradient the
// size a full nominal-batch step has in training, at 1/accumulate of the cost. Without warmup, without EMA.
//
// Writes (when request.out_dir is set, each atomically): lr_find.json (settings, points, suggestion,
// notes; read by the HTML report), lr_find.csv (step, lr, loss, smoothed) and lr_find.png (the curve on
// a log axis with the suggestion marked), and config.yaml (the resolved configuration it ran, with the
// batch chosen when batch: auto).
//
// Guarantees: deterministic on the CPU for a seed (config.seed seeds the weights and the loader). Ctrl-C
// ends the test after the step in progress; the steps so far are analysed and written, and the result
// says interrupted.
//
// Throws: UsageError (no such split, no images, no classes), DataError (no readable image), OutOfMemoryError
// (a step does not fit: lower batch or imgsz; 'detkit plan' says what fits), RunError (a file cannot be
// written).
#pragma once

#include "core/torch_plugin.h"

namespace detkit::train {

LrFindResult find_learning_rate(const LrFindRequest& request);

}  // namespace detkit::train

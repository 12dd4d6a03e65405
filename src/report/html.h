// The report page: one self-contained HTML document built from what report/run_files.h read.
//
// What it is: a title and summary cards (model, epochs, best and final mAP, time, peak memory, guardrail
// and out-of-memory counts), then, each when its input is there: training curves (losses, learning rate,
// mAP50 and mAP50-95 per epoch, images/s, data-wait share), per-class precision-recall curves, F1 against
// confidence, the confusion matrix as a shaded table, per-class AP, dataset statistics (boxes per class;
// box sizes with the model's strides 8/16/32 marked), the validation samples image, the label audit (a
// summary line, then per kind -- wrong_class, missing, badly_placed, spurious -- a table of the top 20
// suspects and up to 12 of their side-by-side crops), the guardrail and out-of-memory events, the
// environment report and the resolved configuration. The output directory of `detkit lr-find` or of
// `detkit audit` (no training or evaluation files) gets a page of that section and the configuration only.
//
// Guarantees:
//   - self-contained and offline: inline CSS and SVG, the samples image and the audit crops as data:
//     URIs; no script, no external font, stylesheet, image or link is referenced, and a
//     Content-Security-Policy meta tag forbids loading any;
//   - every text taken from the inputs is HTML-escaped;
//   - an absent input leaves its section out and puts one line (<p class="note" data-missing="FILE">) in
//     its place; in an evaluation directory only the evaluation's own inputs get such a line; an absent
//     audit (optional and rare) gets none;
//   - sections have stable ids: summary, training, lr-find, validation (with pr-curves, f1-confidence,
//     confusion), per-class, dataset, samples, audit (with audit-KIND per kind that has suspects; each table
//     row has data-suspect="ID"), events, environment, config; each training-curve series is one
//     <polyline data-series="NAME"> with one point per epoch that has a finite value;
//   - deterministic: the same inputs give the same bytes (no timestamps).
//
// Throws: nothing beyond std::bad_alloc.
#pragma once

#include <string>

#include "report/run_files.h"

namespace detkit::report {

std::string render_html(const RunFiles& files);

// Standard base64 (RFC 4648, with padding) of arbitrary bytes.
std::string base64(const std::string& bytes);

}  // namespace detkit::report

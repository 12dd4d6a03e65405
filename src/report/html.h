// The report page: one self-contained HTML document built from what report/run_files.h read.
//
// What it is: a title and summary cards (model, epochs, best and final mAP, time, peak memory, guardrail
// and out-of-memory counts), then, each when its input is there: training curves (losses, learning rate,
// mAP50 and mAP50-95 per epoch, images/s, data-wait share), per-class precision-recall curves, F1 against
// confidence, the confusion matrix as a shaded table, per-class AP, dataset statistics (boxes per class;
// box sizes with the model's strides 8/16/32 marked), the validation samples image, the guardrail and
// out-of-memory events, the environment report and the resolved configuration.
//
// Guarantees:
//   - self-contained and offline: inline CSS and SVG, the samples image as a data: URI; no script, no
//     external font, stylesheet, image or link is referenced, and a Content-Security-Policy meta tag
//     forbids loading any;
//   - every text taken from the inputs is HTML-escaped;
//   - an absent input leaves its section out and puts one line (<p class="note" data-missing="FILE">) in
//     its place; in an evaluation directory only the evaluation's own inputs get such a line;
//   - sections have stable ids: summary, training, validation (with pr-curves, f1-confidence, confusion),
//     per-class, dataset, samples, events, environment, config; each training-curve series is one
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

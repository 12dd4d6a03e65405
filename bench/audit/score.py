#!/usr/bin/env python3
"""Score a `detkit audit` audit.json against the changes plant_noise.py planted.

usage: score.py AUDIT_JSON PLANTED_JSON [--markdown] [--json OUT]

For each kind, the audit's suspects of that kind are taken in rank order ("rank", else score, highest first)
and k = the number planted of that kind. A suspect hits a planted change of its own kind when the image file
names match (basenames) and:
  wrong_class   suspect "box" IoU >= 0.9 with the planted noisy_box (the box as labelled, unchanged)
  badly_placed  suspect "box" IoU >= 0.9 with the planted noisy_box (the shifted box)
  spurious      suspect "box" IoU >= 0.9 with the planted noisy_box (the added box)
  missing       suspect "model_box" IoU >= 0.5 with the planted original_box (the deleted box)
Suspects are matched in rank order, each to the unmatched planted change it overlaps most; each planted change
is hit at most once. Per kind: planted, suspects of the kind, hits@k, precision@k = hits@k / k,
recall@k = hits@k / planted, recall@2k, and recall over all suspects of the kind. Also:
  other-kind   planted changes no suspect of their own kind hits but a suspect of another kind points at
               (its "box" IoU >= 0.9 with noisy_box, or its "model_box" IoU >= 0.5 with a deleted box)
  fix          wrong_class hits whose suggested "model_class" is the original class (at k, and over all hits)
  covered      deleted boxes that still overlap a remaining box at IoU >= 0.3 (planted "max_iou_other"): the
               audit's missing_iou default; such a box cannot be found as missing
Every box is xyxy in detkit's pixels (planted.json's original_box / noisy_box use them, like audit.json).
The clean part of a real dataset has its own label errors, so precision here is a lower bound.
Prints a plain table (and with --markdown a markdown table); --json writes the numbers. Exits 0.
Standard library only.
"""
import argparse
import json
import os
import sys

from plant_noise import iou as plant_iou  # the same geometry as the planting

KINDS = ("wrong_class", "badly_placed", "missing", "spurious")
COVERED_IOU = 0.3


def iou(a, b):
    """plant_noise's IoU, 0 when either box is absent (a suspect without a box)."""
    return 0.0 if a is None or b is None else plant_iou(a, b)


def base(name):
    return os.path.basename((name or "").replace("\\", "/"))


def overlap(kind, suspect, change):
    """IoU by the kind's rule, or 0 when it does not apply."""
    if base(suspect.get("file")) != base(change.get("file")):
        return 0.0
    if kind == "missing":
        v = iou(suspect.get("model_box"), change.get("original_box"))
        return v if v >= 0.5 else 0.0
    v = iou(suspect.get("box"), change.get("noisy_box"))
    return v if v >= 0.9 else 0.0


def points_at(suspect, change):
    """Whether a suspect of any kind is about this planted change (for the other-kind column)."""
    if base(suspect.get("file")) != base(change.get("file")):
        return False
    if change.get("noisy_box") is not None and iou(suspect.get("box"), change["noisy_box"]) >= 0.9:
        return True
    if change["kind"] == "missing" and iou(suspect.get("model_box"), change.get("original_box")) >= 0.5:
        return True
    return False


def match(kind, suspects, changes):
    """For each suspect (in order) the index of the change it hits, or None."""
    used = set()
    out = []
    for s in suspects:
        best, best_v = None, 0.0
        for i, c in enumerate(changes):
            if i in used:
                continue
            v = overlap(kind, s, c)
            if v > best_v:
                best, best_v = i, v
        if best is not None:
            used.add(best)
        out.append(best)
    return out


def rank_key(s):
    r = s.get("rank")
    return (r if isinstance(r, (int, float)) else float("inf"), -(s.get("score") or 0.0), s.get("id") or "")


def score(audit, planted):
    suspects = audit.get("suspects") or []
    changes = planted["changes"] if isinstance(planted, dict) else planted
    rows = {}
    for kind in KINDS:
        ps = [c for c in changes if c.get("kind") == kind]
        ss = sorted((s for s in suspects if s.get("kind") == kind), key=rank_key)
        k = len(ps)
        hits_of = match(kind, ss, ps)  # greedy in rank order: a prefix's hits are the hits of the first n
        hit_at = lambda n: sum(1 for h in hits_of[:n] if h is not None)
        hits_k, hits_2k, hits_all = hit_at(k), hit_at(2 * k), hit_at(len(ss))
        hit_changes = {h for h in hits_of if h is not None}
        others = 0
        for i, c in enumerate(ps):
            if i not in hit_changes and any(points_at(s, c) for s in suspects if s.get("kind") != kind):
                others += 1
        row = {"planted": k, "suspects": len(ss), "k": k, "hits_at_k": hits_k,
               "precision_at_k": hits_k / k if k else None, "recall_at_k": hits_k / k if k else None,
               "hits_at_2k": hits_2k, "recall_at_2k": hits_2k / k if k else None,
               "hits_all": hits_all, "recall_all": hits_all / k if k else None, "other_kind": others}
        if kind == "wrong_class":
            fixed_k = sum(1 for s, h in zip(ss[:k], hits_of[:k]) if h is not None and s.get("model_class") == ps[h].get("original_class"))
            fixed_all = sum(1 for s, h in zip(ss, hits_of) if h is not None and s.get("model_class") == ps[h].get("original_class"))
            row.update(fix_correct_at_k=fixed_k, fix_accuracy_at_k=fixed_k / hits_k if hits_k else None,
                       fix_correct_all=fixed_all, fix_accuracy_all=fixed_all / hits_all if hits_all else None)
        if kind == "missing":
            row["covered"] = sum(1 for c in ps if (c.get("max_iou_other") or 0) >= COVERED_IOU)
        rows[kind] = row
    total_planted = sum(r["planted"] for r in rows.values())
    total = {"planted": total_planted, "suspects": len(suspects),
             "hits_at_k": sum(r["hits_at_k"] for r in rows.values()),
             "hits_at_2k": sum(r["hits_at_2k"] for r in rows.values()),
             "hits_all": sum(r["hits_all"] for r in rows.values())}
    for key in ("hits_at_k", "hits_at_2k", "hits_all"):
        total[key.replace("hits", "recall")] = total[key] / total_planted if total_planted else None
    total["precision_at_k"] = total["recall_at_k"]  # sum of k = planted
    return rows, total


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


COLUMNS = [("kind", "kind"), ("planted", "planted"), ("suspects", "suspects"), ("hits_at_k", "hits@k"),
           ("precision_at_k", "P@k"), ("recall_at_k", "R@k"), ("recall_at_2k", "R@2k"), ("recall_all", "R@all"),
           ("other_kind", "other-kind")]


def table_rows(rows, total):
    out = []
    for kind in KINDS:
        r = rows[kind]
        out.append([kind] + [fmt(r.get(key)) for key, _ in COLUMNS[1:]])
    out.append(["all"] + [fmt(total.get(key)) if key != "other_kind" else fmt(sum(r["other_kind"] for r in rows.values()))
                          for key, _ in COLUMNS[1:]])
    return out


def notes(rows):
    wc, ms = rows["wrong_class"], rows["missing"]
    lines = [f"wrong_class fix (model_class == original class): {fmt(wc['fix_correct_at_k'])}/{fmt(wc['hits_at_k'])} hits@k"
             f" ({fmt(wc['fix_accuracy_at_k'])}), {fmt(wc['fix_correct_all'])}/{fmt(wc['hits_all'])} of all hits"
             f" ({fmt(wc['fix_accuracy_all'])})"]
    if ms["planted"]:
        lines.append(f"missing: {ms['covered']} of {ms['planted']} deleted boxes still overlap a remaining box at IoU >= {COVERED_IOU}"
                     " (the audit's default missing_iou), so cannot be found as missing")
    return lines


def header(audit, planted):
    meta = planted if isinstance(planted, dict) else {}
    parts = [f"audit: mode {audit.get('mode', '?')}, folds {audit.get('folds', '?')}, splits {','.join(audit.get('splits') or []) or '?'},"
             f" {audit.get('images', '?')} images, {audit.get('annotations', '?')} boxes, {audit.get('predictions', '?')} predictions,"
             f" model {audit.get('model', '?')}"]
    if meta:
        parts.append(f"planted: seed {meta.get('seed', '?')}, rate {meta.get('rate', '?')}, splits {','.join(meta.get('splits') or [])},"
                     f" {meta.get('original_boxes', '?')} original boxes, {meta.get('per_kind', '?')} per kind")
    parts.append("k = planted of the kind; other-kind: missed by its own kind but pointed at by a suspect of another kind")
    return parts


def print_plain(audit, planted, rows, total):
    for line in header(audit, planted):
        print(line)
    names = [name for _, name in COLUMNS]
    body = table_rows(rows, total)
    widths = [max(len(names[i]), *(len(r[i]) for r in body)) for i in range(len(names))]
    print("  ".join(n.ljust(widths[0]) if i == 0 else n.rjust(widths[i]) for i, n in enumerate(names)))
    for r in body:
        print("  ".join(v.ljust(widths[0]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(r)))
    for line in notes(rows):
        print(line)


def print_markdown(audit, planted, rows, total):
    for line in header(audit, planted):
        print(line + "  ")
    print()
    names = [name for _, name in COLUMNS]
    print("| " + " | ".join(names) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(names) - 1)) + "|")
    for r in table_rows(rows, total):
        print("| " + " | ".join(r) + " |")
    print()
    for line in notes(rows):
        print("- " + line)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("audit", metavar="AUDIT_JSON")
    p.add_argument("planted", metavar="PLANTED_JSON")
    p.add_argument("--markdown", action="store_true", help="also print a markdown table")
    p.add_argument("--json", metavar="OUT", help="write the scores as JSON to OUT ('-': stdout)")
    args = p.parse_args()
    with open(args.audit, encoding="utf-8") as f:
        audit = json.load(f)
    with open(args.planted, encoding="utf-8") as f:
        planted = json.load(f)
    rows, total = score(audit, planted)
    print_plain(audit, planted, rows, total)
    if args.markdown:
        print()
        print_markdown(audit, planted, rows, total)
    if args.json:
        text = json.dumps({"kinds": rows, "all": total}, indent=1) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w", encoding="utf-8") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The pycocotools side of bench/coco_eval. Prints one JSON object per call.

    peer.py time GT.json DT.json [--reps N]     time pycocotools itself (needs `import pycocotools`)
    peer.py estimate FIXTURES_DIR GT.json DT.json
                                                no pycocotools here: estimate its evaluate + accumulate time
                                                on GT/DT from the seconds recorded in the fixtures
    peer.py jsonload GT.json DT.json [--reps N] time python's json.load of both files (a floor of what
                                                pycocotools' COCO() + loadRes() spend reading them)

`time` uses pycocotools' public API only: COCO(gt), loadRes(dt), COCOeval(.., 'bbox') .evaluate(),
.accumulate(), .summarize(), each timed on its own (median of N repetitions), with its printing sent to
stderr.

`estimate` is an extrapolation, not a measurement. COCOeval's Python loops scale with the number of
(image, category) pairs (evaluate visits every pair, evaluateImg every pair x 4 area ranges, and accumulate
every category x area range x maxDets x image) and with the number of detections (per-detection bookkeeping
and accumulate's per-detection precision loop). The work per pair is only done where a pair has a ground
truth or a detection; elsewhere each visit is a quick exit. So the model is
    t = c0 + a * (non-empty image x category pairs) + b * (detections),
solved exactly from the three fixtures' recorded seconds (three cases, three constants). Two variants show
how much the answer depends on that choice: the same without the detection term (least squares, one residual
degree of freedom); pairs with both ground truth and detections apart from the other non-empty pairs (which
skip the matching); and an upper bound that charges every pair, empty or not, a fitted per-pair cost. The
first model leaves out what an empty pair's quick exit costs (the fixtures have almost none to fit it on),
so it errs low; the last errs high.
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

FIXTURES = ["mixed-200", "ties-100", "tiny-edge"]


def features(gt_path, dt_path):
    with open(gt_path) as f:
        gt = json.load(f)
    with open(dt_path) as f:
        dt = json.load(f)
    images = {im["id"] for im in gt["images"]}
    cats = {c["id"] for c in gt["categories"]}
    pairs = {(a["image_id"], a["category_id"]) for a in gt["annotations"]
             if a["image_id"] in images and a["category_id"] in cats}
    dt_pairs = {(d["image_id"], d["category_id"]) for d in dt if d["category_id"] in cats}
    return {"images": len(images), "categories": len(cats), "pairs": len(images) * len(cats),
            "nonempty_pairs": len(pairs | dt_pairs), "pairs_with_gt_and_dt": len(pairs & dt_pairs),
            "gt_boxes": len(gt["annotations"]), "detections": len(dt)}


def solve(rows, ys):
    """Least squares by the normal equations (numpy when it is there; this is 3x3 at most)."""
    try:
        import numpy as np
        coef, *_ = np.linalg.lstsq(np.array(rows, dtype=float), np.array(ys, dtype=float), rcond=None)
        return [float(c) for c in coef]
    except ImportError:
        n = len(rows[0])
        ata = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
        aty = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(n)]
        for col in range(n):  # Gauss-Jordan
            piv = max(range(col, n), key=lambda r: abs(ata[r][col]))
            ata[col], ata[piv], aty[col], aty[piv] = ata[piv], ata[col], aty[piv], aty[col]
            for r in range(n):
                if r != col:
                    f = ata[r][col] / ata[col][col]
                    ata[r] = [x - f * y for x, y in zip(ata[r], ata[col])]
                    aty[r] -= f * aty[col]
        return [aty[i] / ata[i][i] for i in range(n)]


def estimate(fixtures_dir, gt_path, dt_path):
    cases = []
    for name in FIXTURES:
        d = os.path.join(fixtures_dir, name)
        with open(os.path.join(d, "expected.json")) as f:
            seconds = json.load(f)["pycocotools_seconds"]
        cases.append({"name": name, "seconds": seconds, **features(os.path.join(d, "gt.json"), os.path.join(d, "dt.json"))})
    target = features(gt_path, dt_path)
    ys = [c["seconds"] for c in cases]
    # Each model: its name and its terms (constant name, feature of a case).
    one = lambda c: 1.0
    nonempty = lambda c: float(c["nonempty_pairs"])
    both = lambda c: float(c["pairs_with_gt_and_dt"])
    dt_only = lambda c: float(c["nonempty_pairs"] - c["pairs_with_gt_and_dt"])
    allpairs = lambda c: float(c["pairs"])
    dets = lambda c: float(c["detections"])
    models = [
        ("c0 + a*nonempty_pairs + b*detections", [("c0", one), ("a_per_pair", nonempty), ("b_per_detection", dets)]),
        ("c0 + a*nonempty_pairs", [("c0", one), ("a_per_pair", nonempty)]),
        ("c0 + a1*pairs_with_gt_and_dt + a2*other_nonempty_pairs",
         [("c0", one), ("a1_per_pair_with_gt", both), ("a2_per_other_pair", dt_only)]),
        ("c0 + a*all_pairs + b*detections (upper bound: empty pairs charged in full)",
         [("c0", one), ("a_per_pair", allpairs), ("b_per_detection", dets)]),
    ]
    out = {"fixtures": cases, "target": target, "models": []}
    for name, terms in models:
        def row(c):
            return [f(c) for _, f in terms]

        coef = solve([row(c) for c in cases], ys)
        fitted = [sum(k * x for k, x in zip(coef, row(c))) for c in cases]
        out["models"].append({
            "model": name, **{t: v for (t, _), v in zip(terms, coef)},
            "residuals_s": [round(f - y, 6) for f, y in zip(fitted, ys)],
            "estimate_s": sum(k * x for k, x in zip(coef, row(target))),
        })
    out["estimate_s"] = out["models"][0]["estimate_s"]
    out["estimate_range_s"] = [min(m["estimate_s"] for m in out["models"]), max(m["estimate_s"] for m in out["models"])]
    return out


def time_pycocotools(gt_path, dt_path, reps):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import pycocotools
    stages = {"load_gt_s": [], "load_dt_s": [], "evaluate_s": [], "accumulate_s": [], "summarize_s": []}
    stats = None
    for _ in range(reps):
        with contextlib.redirect_stdout(sys.stderr):
            t0 = time.perf_counter()
            gt = COCO(gt_path)
            t1 = time.perf_counter()
            dt = gt.loadRes(dt_path)
            t2 = time.perf_counter()
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            t3 = time.perf_counter()
            ev.accumulate()
            t4 = time.perf_counter()
            ev.summarize()
            t5 = time.perf_counter()
        for k, v in zip(stages, [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]):
            stages[k].append(v)
        stats = [float(s) for s in ev.stats]
    med = {k: statistics.median(v) for k, v in stages.items()}
    med["evaluate_accumulate_s"] = med["evaluate_s"] + med["accumulate_s"]
    med["total_s"] = sum(statistics.median(v) for v in stages.values())
    return {"peer": "pycocotools " + getattr(pycocotools, "__version__", "?"), "reps": reps, **med,
            "AP": stats[0], "AP50": stats[1], "AR100": stats[8]}


def time_jsonload(gt_path, dt_path, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for p in (gt_path, dt_path):
            with open(p) as f:
                json.load(f)
        times.append(time.perf_counter() - t0)
    return {"peer": "python %d.%d json.load" % sys.version_info[:2], "reps": reps, "jsonload_s": statistics.median(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("time", "jsonload"):
        p = sub.add_parser(name)
        p.add_argument("gt")
        p.add_argument("dt")
        p.add_argument("--reps", type=int, default=3)
    p = sub.add_parser("estimate")
    p.add_argument("fixtures")
    p.add_argument("gt")
    p.add_argument("dt")
    a = ap.parse_args()
    if a.cmd == "time":
        out = time_pycocotools(a.gt, a.dt, a.reps)
    elif a.cmd == "jsonload":
        out = time_jsonload(a.gt, a.dt, a.reps)
    else:
        out = estimate(a.fixtures, a.gt, a.dt)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

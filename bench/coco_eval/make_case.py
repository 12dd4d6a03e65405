#!/usr/bin/python3
"""Writes a deterministic, COCO-sized synthetic bbox evaluation case: gt.json (COCO ground truth) and dt.json
(COCO results list), for bench/coco_eval.

    make_case.py OUT_DIR [--images 5000] [--categories 80] [--gt-per-image 8] [--dets-per-image 100] [--seed 0]

Same arguments and numpy version -> byte-identical files. It prints one JSON line describing what it wrote.

What it imitates (COCO val2017's shape, not its content):
- images: mostly 640 px wide with COCO's usual aspect ratios; about 1 % have no annotation;
- categories: COCO's 80 ids (1..90 with its gaps), instance counts skewed like COCO's (frequency 1/rank:
  the first, like 'person', gets about 28 % of all boxes, the rarest a few dozen);
- ground truth per image: 1 + negative binomial (mean --gt-per-image, long tail, capped at 90); each image
  holds 1 + Poisson(1.9) categories (COCO: 2.9 on average), its boxes spread over them by frequency;
- box size: sqrt(box area) log-normal around 48 px; 'area' is the box area times 0.45..0.95 (COCO's 'area'
  is the segmentation's, smaller than the box's), which gives about 41 % small (< 32^2), 37 % medium and
  20 % large (> 96^2), near COCO's 41 / 34 / 24; aspect ratio log-normal; about 2 % iscrowd, larger boxes;
- detections, exactly --dets-per-image per image, sorted by score within an image as detectors write them:
  each non-crowd box is found with a probability that grows with its size, jittered by a few percent of
  its size (more for small boxes), with the right category 92 % of the time and a high score; a third of
  the found boxes get a looser duplicate with a lower score; crowd regions get a few detections inside them;
  the rest are false positives with low scores: half near real boxes (localisation errors, in a category of
  the image or a random one), half anywhere in the image, in categories drawn by COCO-like frequency. When
  an image has more candidates than --dets-per-image, the highest-scoring ones are kept. Coordinates have 2
  decimals and scores 4, so equal scores occur, as in real results files.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

COCO_CATEGORY_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
                     28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
                     54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
                     81, 82, 84, 85, 86, 87, 88, 89, 90]


def category_ids(k):
    if k <= len(COCO_CATEGORY_IDS):
        return COCO_CATEGORY_IDS[:k]
    return COCO_CATEGORY_IDS + list(range(91, 91 + k - len(COCO_CATEGORY_IDS)))


def clip_boxes(x, y, w, h, width, height):
    """Clips xywh boxes to the image; keeps at least 1 px of width and height."""
    x0 = np.clip(x, 0, width - 1)
    y0 = np.clip(y, 0, height - 1)
    x1 = np.clip(x + w, x0 + 1, width)
    y1 = np.clip(y + h, y0 + 1, height)
    return x0, y0, x1 - x0, y1 - y0


def random_boxes(rng, n, width, height, mu=math.log(48.0), sigma=1.05, scale=1.0):
    side = np.exp(rng.normal(mu, sigma, n)) * scale
    side = np.clip(side, 2.0, 0.98 * max(width, height))
    aspect = np.exp(rng.normal(0.0, 0.55, n))
    w = np.minimum(side * np.sqrt(aspect), width)
    h = np.minimum(side / np.sqrt(aspect), height)
    x = rng.uniform(0, 1, n) * (width - w)
    y = rng.uniform(0, 1, n) * (height - h)
    return x, y, w, h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--categories", type=int, default=80)
    ap.add_argument("--gt-per-image", type=float, default=8.2)
    ap.add_argument("--dets-per-image", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)

    cats = category_ids(a.categories)
    K = len(cats)
    rank = np.arange(1, K + 1, dtype=float)
    freq = rank ** -1.0
    freq /= freq.sum()

    images, annotations, detections = [], [], []
    ann_id = 1
    stats = {"crowd": 0, "small": 0, "medium": 0, "large": 0}
    aspects = np.array([4 / 3, 3 / 4, 3 / 2, 1.0, 16 / 9, 2 / 3])
    aspect_p = np.array([0.55, 0.15, 0.12, 0.08, 0.06, 0.04])

    for i in range(a.images):
        image_id = 100000 + 7 * i  # sparse ids, as COCO's are
        asp = aspects[rng.choice(len(aspects), p=aspect_p)]
        if asp >= 1:
            width, height = 640, int(round(640 / asp))
        else:
            width, height = int(round(640 * asp)), 640
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id:012d}.jpg"})

        # Ground truth.
        if rng.random() < 0.01:
            n = 0
        else:
            n = 1 + int(rng.negative_binomial(1.3, 1.3 / (1.3 + a.gt_per_image - 1)))
            n = min(n, 90)
        if n:
            m = min(n, K, 1 + int(rng.poisson(1.9)))
            img_cats = rng.choice(K, size=m, replace=False, p=freq)
            w_cats = freq[img_cats] / freq[img_cats].sum()
            box_cat = np.concatenate([img_cats, rng.choice(img_cats, size=n - m, p=w_cats)])
            crowd = rng.random(n) < 0.02
            x, y, w, h = random_boxes(rng, n, width, height)
            if crowd.any():  # crowd regions are larger
                cx, cy, cw, ch = random_boxes(rng, int(crowd.sum()), width, height, scale=3.0)
                x[crowd], y[crowd], w[crowd], h[crowd] = cx, cy, cw, ch
            x, y, w, h = (np.round(v, 2) for v in clip_boxes(x, y, w, h, width, height))
            area = np.round(w * h * rng.uniform(0.45, 0.95, n), 2)
        else:
            box_cat = np.zeros(0, dtype=int)
            crowd = np.zeros(0, dtype=bool)
            x = y = w = h = area = np.zeros(0)
        for j in range(n):
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": cats[box_cat[j]],
                                "bbox": [float(x[j]), float(y[j]), float(w[j]), float(h[j])],
                                "area": float(area[j]), "iscrowd": int(crowd[j])})
            ann_id += 1
            if crowd[j]:
                stats["crowd"] += 1
            elif area[j] < 32 ** 2:
                stats["small"] += 1
            elif area[j] > 96 ** 2:
                stats["large"] += 1
            else:
                stats["medium"] += 1

        # Detections: candidates as arrays (category index, x, y, w, h, score).
        parts = []
        real = ~crowd
        if real.any():
            rx, ry, rw, rh, rc = x[real], y[real], w[real], h[real], box_cat[real]
            size = np.sqrt(rw * rh)
            p_found = np.clip(0.55 + 0.12 * np.log2(np.maximum(size, 1) / 8), 0.35, 0.97)
            found = rng.random(rx.size) < p_found
            for dup, (spread, lo, hi) in enumerate([(0.06, 3.0, 1.6), (0.16, 1.5, 3.5)]):
                sel = found & (rng.random(rx.size) < (1.0 if dup == 0 else 0.33))
                c = int(sel.sum())
                if not c:
                    continue
                s = size[sel]
                rel = spread * (1 + 8 / np.maximum(s, 4))  # small boxes are located less precisely
                dx = rng.normal(0, 1, c) * rel * rw[sel]
                dy = rng.normal(0, 1, c) * rel * rh[sel]
                dw = rw[sel] * np.exp(rng.normal(0, 1, c) * rel)
                dh = rh[sel] * np.exp(rng.normal(0, 1, c) * rel)
                cat = rc[sel].copy()
                wrong = rng.random(c) < 0.08
                cat[wrong] = rng.choice(K, size=int(wrong.sum()), p=freq)
                score = rng.beta(lo, hi, c)
                parts.append((cat, rx[sel] + dx, ry[sel] + dy, dw, dh, score))
        if crowd.any():
            for j in np.flatnonzero(crowd):
                c = 3
                fx, fy = rng.uniform(0, 0.7, c), rng.uniform(0, 0.7, c)
                fw, fh = rng.uniform(0.1, 0.3, c), rng.uniform(0.1, 0.3, c)
                parts.append((np.full(c, box_cat[j]), x[j] + fx * w[j], y[j] + fy * h[j], fw * w[j], fh * h[j],
                              rng.beta(2.0, 3.0, c)))
        have = sum(p[0].size for p in parts)
        rest = max(0, a.dets_per_image - have)
        near = rest // 2 if real.any() else 0
        if near:
            idx = rng.integers(0, int(real.sum()), near)
            rx, ry, rw, rh, rc = x[real][idx], y[real][idx], w[real][idx], h[real][idx], box_cat[real][idx]
            f = rng.uniform(0.3, 1.6, near)
            cat = np.where(rng.random(near) < 0.5, rc, rng.choice(K, size=near, p=freq))
            parts.append((cat, rx + rng.normal(0, 0.4, near) * rw, ry + rng.normal(0, 0.4, near) * rh, rw * f,
                          rh * rng.uniform(0.3, 1.6, near), rng.beta(1.2, 6.0, near)))
        far = rest - near
        if far:
            fx, fy, fw, fh = random_boxes(rng, far, width, height)
            parts.append((rng.choice(K, size=far, p=freq), fx, fy, fw, fh, rng.beta(1.1, 9.0, far)))
        cat, dx, dy, dw, dh, score = (np.concatenate([p[t] for p in parts]) for t in range(6))
        dx, dy, dw, dh = clip_boxes(dx, dy, dw, dh, width, height)
        score = np.round(np.clip(score, 0.0001, 1.0), 4)
        order = np.argsort(-score, kind="stable")[: a.dets_per_image]
        for j in order:
            detections.append((image_id, cats[cat[j]], dx[j], dy[j], dw[j], dh[j], score[j]))

    os.makedirs(a.out, exist_ok=True)
    gt = {"info": {"description": f"detkit bench/coco_eval synthetic case, seed {a.seed}"},
          "images": images, "annotations": annotations,
          "categories": [{"id": c, "name": f"category-{c}", "supercategory": "synthetic"} for c in cats]}
    with open(os.path.join(a.out, "gt.json"), "w") as f:
        json.dump(gt, f, separators=(",", ":"))
    with open(os.path.join(a.out, "dt.json"), "w") as f:
        f.write("[")
        f.write(",".join('{"image_id":%d,"category_id":%d,"bbox":[%.2f,%.2f,%.2f,%.2f],"score":%.4f}' % d
                         for d in detections))
        f.write("]\n")
    pairs = {(d[0], d[1]) for d in detections} | {(an["image_id"], an["category_id"]) for an in annotations}
    print(json.dumps({"out": a.out, "seed": a.seed, "images": len(images), "categories": K,
                      "gt_boxes": len(annotations), **stats, "detections": len(detections),
                      "nonempty_image_category_pairs": len(pairs)}))


if __name__ == "__main__":
    sys.exit(main())

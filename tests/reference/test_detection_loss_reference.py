"""detkit's task-aligned assigner and detection loss against an independent plain-PyTorch implementation.

The reference below is written from the rule (TOOD, Feng et al. 2021, as detkit documents it in
src/models/assigner.h) one ground-truth box at a time, with Python loops and sorted() instead of batched
tensor tricks, so a shared mistake in vectorisation cannot hide. The same random inputs (scores, predicted
boxes, ground truth with padding rows, empty images, degenerate boxes) go to detection_loss_tool; masks and
indices must agree exactly, floats to 1e-5. The full loss is compared on random head outputs, with and
without targets.

Run by CTest with DETECTION_LOSS_TOOL set; needs Debian's python3-torch and python3-torchvision.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F
import torchvision

EPS = 1e-9


def iou_with_each(box, others):
    """IoU of one xyxy box with each row of others [A, 4]; inverted boxes count as empty."""
    iw = (torch.minimum(box[2], others[:, 2]) - torch.maximum(box[0], others[:, 0])).clamp(min=0)
    ih = (torch.minimum(box[3], others[:, 3]) - torch.maximum(box[1], others[:, 1])).clamp(min=0)
    inter = iw * ih
    area = (box[2] - box[0]).clamp(min=0) * (box[3] - box[1]).clamp(min=0)
    areas = (others[:, 2] - others[:, 0]).clamp(min=0) * (others[:, 3] - others[:, 1]).clamp(min=0)
    return inter / (area + areas - inter + EPS)


def assign_reference(scores, pred, anchors, gt_labels, gt_boxes, gt_mask, topk, alpha, beta):
    b_count, a_count, classes = scores.shape
    labels = torch.full((b_count, a_count), classes, dtype=torch.long)
    boxes = torch.zeros(b_count, a_count, 4)
    targets = torch.zeros(b_count, a_count, classes)
    foreground = torch.zeros(b_count, a_count, dtype=torch.bool)
    gt_index = torch.full((b_count, a_count), -1, dtype=torch.long)
    ax, ay = anchors[:, 0], anchors[:, 1]
    for b in range(b_count):
        metric, iou, claims = {}, {}, {}
        for m in range(gt_boxes.shape[1]):
            if not gt_mask[b, m, 0]:
                continue
            x1, y1, x2, y2 = gt_boxes[b, m]
            inside = torch.minimum(torch.minimum(ax - x1, ay - y1), torch.minimum(x2 - ax, y2 - ay)) > EPS
            overlap = torch.where(inside, iou_with_each(gt_boxes[b, m], pred[b]), torch.zeros(()))
            score = scores[b, :, int(gt_labels[b, m, 0])]
            metric[m] = torch.where(inside, score.pow(alpha) * overlap.pow(beta), torch.zeros(()))
            iou[m] = overlap
            ranked = sorted((a for a in range(a_count) if metric[m][a] > 0), key=lambda a: -metric[m][a].item())
            for a in ranked[:topk]:
                claims.setdefault(a, []).append(m)
        won = {}
        for a, claimants in claims.items():
            best = claimants[0]
            for m in claimants[1:]:
                if iou[m][a] > iou[best][a]:
                    best = m
            won.setdefault(best, []).append(a)
        for m, anchors_won in won.items():
            best_metric = max(metric[m][a] for a in anchors_won)
            best_iou = max(iou[m][a] for a in anchors_won)
            c = int(gt_labels[b, m, 0])
            for a in anchors_won:
                foreground[b, a] = True
                gt_index[b, a] = m
                labels[b, a] = c
                boxes[b, a] = gt_boxes[b, m]
                targets[b, a, c] = metric[m][a] * best_iou / (best_metric + EPS)
    return labels, boxes, targets, foreground, gt_index


def assign_problem(g, topk, alpha, beta):
    b_count, classes, m_count, imgsz = 4, 5, 7, 128
    anchors = []
    for stride in (8, 16, 32):
        for y in range(imgsz // stride):
            for x in range(imgsz // stride):
                anchors.append([(x + 0.5) * stride, (y + 0.5) * stride])
    anchors = torch.tensor(anchors)
    a_count = anchors.shape[0]
    half = torch.rand(b_count, a_count, 2, generator=g) * 40 + 2
    centre = anchors + torch.randn(b_count, a_count, 2, generator=g) * 4
    pred = torch.cat([centre - half, centre + half], 2)
    scores = torch.rand(b_count, a_count, classes, generator=g)
    xy = torch.rand(b_count, m_count, 2, generator=g) * 100
    gt_boxes = torch.cat([xy, xy + torch.rand(b_count, m_count, 2, generator=g) * 70 + 2], 2)
    gt_labels = torch.randint(classes, (b_count, m_count, 1), generator=g)
    gt_mask = torch.rand(b_count, m_count, 1, generator=g) > 0.25
    gt_mask[2] = False                    # an image without boxes among others
    gt_boxes[0, 1] = torch.tensor([40.0, 40.0, 40.0, 90.0])  # degenerate: zero width
    gt_mask[0, 1] = True
    gt_boxes[1, 2] = gt_boxes[1, 3]       # two identical boxes: the first wins the ties
    gt_mask[1, 2:4] = True
    gt_labels[~gt_mask] = -1              # padding rows carry nonsense the assigner must ignore
    return dict(B=b_count, A=a_count, C=classes, M=m_count, topk=topk, alpha=alpha, beta=beta,
                scores=scores, pred_boxes=pred, anchors=anchors, gt_labels=gt_labels, gt_boxes=gt_boxes,
                gt_mask=gt_mask)


def flat(t):
    return t.reshape(-1).tolist()


def loss_reference(levels, targets, b_count, classes, bins, gains=(7.5, 0.5, 1.5)):
    dist = torch.cat([lv["box"].view(b_count, 4 * bins, -1).transpose(1, 2) for lv in levels], 1)
    logits = torch.cat([lv["cls"].view(b_count, classes, -1).transpose(1, 2) for lv in levels], 1)
    anchors, strides = [], []
    for lv in levels:
        for y in range(lv["h"]):
            for x in range(lv["w"]):
                anchors.append([x + 0.5, y + 0.5])
                strides.append([float(lv["stride"])])
    anchors, strides = torch.tensor(anchors), torch.tensor(strides)
    a_count = anchors.shape[0]
    distances = (dist.view(b_count, a_count, 4, bins).softmax(-1) * torch.arange(bins, dtype=torch.float32)).sum(-1)
    pred = torch.cat([anchors - distances[..., :2], anchors + distances[..., 2:]], -1)

    per_image = [[row for row in targets.tolist() if int(row[0]) == b] for b in range(b_count)]
    m_count = max([len(rows) for rows in per_image] + [0])
    gt_labels = torch.zeros(b_count, m_count, 1, dtype=torch.long)
    gt_boxes = torch.zeros(b_count, m_count, 4)
    gt_mask = torch.zeros(b_count, m_count, 1, dtype=torch.bool)
    for b, rows in enumerate(per_image):
        for m, row in enumerate(rows):
            gt_labels[b, m, 0] = int(row[1])
            gt_boxes[b, m] = torch.tensor(row[2:])
            gt_mask[b, m, 0] = True
    _, boxes, target_scores, fg, _ = assign_reference(logits.sigmoid(), pred * strides, anchors * strides, gt_labels,
                                                      gt_boxes, gt_mask, 10, 0.5, 6.0)
    boxes = boxes / strides
    score_sum = max(target_scores.sum().item(), 1.0)
    cls = F.binary_cross_entropy_with_logits(logits, target_scores, reduction="sum") / score_sum
    box = torch.zeros(())
    dfl = torch.zeros(())
    for b in range(b_count):
        for a in range(a_count):
            if not fg[b, a]:
                continue
            weight = target_scores[b, a].sum()
            box = box + torchvision.ops.complete_box_iou_loss(pred[b, a][None], boxes[b, a][None], eps=1e-7)[0] * weight
            x, y = anchors[a]
            x1, y1, x2, y2 = boxes[b, a]
            sides = torch.stack([x - x1, y - y1, x2 - x, y2 - y]).clamp(0, bins - 1.01)
            side_logits = dist[b, a].view(4, bins)
            left = sides.floor().long()
            w_left = (left + 1).float() - sides
            per_side = (F.cross_entropy(side_logits, left, reduction="none") * w_left
                        + F.cross_entropy(side_logits, left + 1, reduction="none") * (1 - w_left))
            dfl = dfl + per_side.mean() * weight
    box, dfl = box / score_sum, dfl / score_sum
    total = (gains[0] * box + gains[1] * cls + gains[2] * dfl) * b_count
    return {"total": total.item(), "box": box.item(), "cls": cls.item(), "dfl": dfl.item()}


def main():
    g = torch.Generator().manual_seed(11)
    problems = [assign_problem(g, 10, 0.5, 6.0), assign_problem(g, 3, 1.0, 2.0)]

    b_count, classes, bins, h, w = 3, 4, 16, 64, 96
    levels = []
    for stride in (8, 16, 32):
        levels.append({"h": h // stride, "w": w // stride, "stride": stride,
                       "box": torch.randn(b_count, 4 * bins, h // stride, w // stride, generator=g) * 2,
                       "cls": torch.randn(b_count, classes, h // stride, w // stride, generator=g) - 3})
    xy = torch.rand(6, 2, generator=g) * torch.tensor([70.0, 45.0])
    rows = torch.cat([torch.tensor([[0.0], [0.0], [0.0], [2.0], [2.0], [0.0]]),
                      torch.randint(classes, (6, 1), generator=g).float(),
                      xy, xy + torch.rand(6, 2, generator=g) * 30 + 4], 1)  # image 1 has no boxes
    target_sets = [rows, torch.zeros(0, 6)]

    doc = {"assign": [{k: (flat(v.float()) if torch.is_tensor(v) else v) for k, v in p.items()} for p in problems],
           "loss": {"B": b_count, "C": classes, "reg_max": bins,
                    "levels": [{"h": lv["h"], "w": lv["w"], "stride": lv["stride"], "box": flat(lv["box"]),
                                "cls": flat(lv["cls"])} for lv in levels],
                    "targets": [flat(t) for t in target_sets]}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
        path = f.name
    try:
        got = json.loads(subprocess.run([os.environ["DETECTION_LOSS_TOOL"], path], check=True, capture_output=True,
                                        text=True).stdout)
    finally:
        os.unlink(path)

    failures = 0

    def report(name, ok, detail):
        nonlocal failures
        failures += not ok
        print(f"{name}: {detail} ({'ok' if ok else 'FAIL'})")

    for i, p in enumerate(problems):
        expected = assign_reference(p["scores"], p["pred_boxes"], p["anchors"], p["gt_labels"], p["gt_boxes"],
                                    p["gt_mask"], p["topk"], p["alpha"], p["beta"])
        mine = got["assign"][i]
        fg = expected[3]
        print(f"assign[{i}] (topk {p['topk']}, alpha {p['alpha']}, beta {p['beta']}): {int(fg.sum())} foreground "
              f"anchors of {fg.numel()}, per image {fg.sum(1).tolist()}")
        for key, ref in zip(["labels", "boxes", "scores", "foreground", "gt_index"], expected):
            values = torch.tensor(mine[key], dtype=torch.float64).view(-1)
            ref = ref.reshape(-1).double()
            if values.numel() != ref.numel():
                report(f"  {key}", False, f"{values.numel()} values, expected {ref.numel()}")
                continue
            worst = (values - ref).abs().max().item()
            tolerance = 1e-5 if key in ("boxes", "scores") else 0
            report(f"  {key}", worst <= tolerance, f"{values.numel()} values, max difference {worst:.3g}, tolerance {tolerance}")
    if int(problems[0]["gt_mask"].sum()) == 0 or sum(int(torch.tensor(m["foreground"]).sum()) for m in got["assign"]) == 0:
        report("assign inputs", False, "no foreground at all: the comparison would be vacuous")

    for i, targets in enumerate(target_sets):
        ref = loss_reference(levels, targets, b_count, classes, bins)
        mine = got["loss"][i]
        for key in ("total", "box", "cls", "dfl"):
            difference = abs(mine[key] - ref[key])
            ok = difference <= 1e-5 + 1e-5 * abs(ref[key]) and math.isfinite(mine[key])
            report(f"loss[{len(targets)} targets].{key}", ok, f"detkit {mine[key]:.7g}, reference {ref[key]:.7g}")
    print(f"{'all passed' if failures == 0 else f'{failures} failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

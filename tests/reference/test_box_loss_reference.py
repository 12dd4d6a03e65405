"""detkit's box-loss pieces against independent references on random inputs:
CIoU against torchvision.ops.complete_box_iou_loss, distribution focal loss against two cross-entropies,
distribution decoding against softmax @ bins, anchor points against a plain loop.

Run by CTest with LOSS_TOOL set; needs Debian's python3-torch and python3-torchvision.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F
import torchvision


def main():
    g = torch.Generator().manual_seed(7)
    n, bins = 500, 16
    xy = torch.rand(n, 2, generator=g) * 100
    a = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 50 + 0.1], 1)
    b = a + torch.randn(n, 4, generator=g) * 8
    b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2] + 0.1)
    logits = torch.randn(n, 4, bins, generator=g) * 2
    targets = torch.rand(n, 4, generator=g) * (bins - 1.01)
    grids, strides = [[4, 6], [2, 3], [1, 2]], [8, 16, 32]
    points = (a[:, :2] + a[:, 2:]) / 2
    doc = {"n": n, "bins": bins, "a": a.tolist(), "b": b.tolist(), "dfl_logits": logits.tolist(),
           "dfl_targets": targets.tolist(), "grids": grids, "strides": strides, "points": points.tolist()}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
        path = f.name
    try:
        got = json.loads(subprocess.run([os.environ["LOSS_TOOL"], path], check=True, capture_output=True, text=True).stdout)
    finally:
        os.unlink(path)

    expected = {}
    expected["ciou"] = 1 - torchvision.ops.complete_box_iou_loss(b, a, reduction="none", eps=1e-7)
    left = targets.long().clamp(0, bins - 2)
    wl = (left + 1).float() - targets
    flat = logits.view(-1, bins)
    expected["dfl"] = (F.cross_entropy(flat, left.view(-1), reduction="none").view(n, 4) * wl
                       + F.cross_entropy(flat, (left + 1).view(-1), reduction="none").view(n, 4) * (1 - wl)).mean(-1)
    expected["decoded"] = logits.softmax(-1) @ torch.arange(bins, dtype=torch.float32)
    anchors, anchor_strides = [], []
    for (h, w), s in zip(grids, strides):
        for y in range(h):
            for x in range(w):
                anchors.append([x + 0.5, y + 0.5])
                anchor_strides.append([float(s)])
    expected["anchors"] = torch.tensor(anchors)
    expected["anchor_strides"] = torch.tensor(anchor_strides)
    expected["roundtrip"] = a
    tolerance = {"ciou": 2e-5, "dfl": 1e-5, "decoded": 1e-5, "anchors": 0, "anchor_strides": 0, "roundtrip": 1e-4}
    failures = 0
    for key, ref in expected.items():
        mine = torch.tensor(got[key]).view(-1)
        worst = (mine - ref.reshape(-1)).abs().max().item() if mine.numel() == ref.numel() else float("inf")
        ok = worst <= tolerance[key]
        failures += not ok
        print(f"{key}: {mine.numel()} values, max difference {worst:.3g} ({'ok' if ok else 'FAIL'}, tolerance {tolerance[key]})")
    print(f"{len(expected) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

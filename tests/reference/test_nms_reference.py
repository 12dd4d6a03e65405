"""detkit's batched_nms keeps exactly the indices torchvision.ops.batched_nms keeps, on random inputs.

Run by CTest with NMS_TOOL set to the nms_tool binary; needs Debian's python3-torch and python3-torchvision.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
import torchvision


def random_case(gen, n, classes, iou, spread):
    xy = torch.rand(n, 2, generator=gen) * spread
    wh = torch.rand(n, 2, generator=gen) * spread / 4 + 0.5
    boxes = torch.cat([xy, xy + wh], dim=1)
    # Clusters of near-duplicates, the case NMS exists for.
    if n > 4:
        dup = torch.randint(0, n, (n // 4,), generator=gen)
        boxes[: n // 4] = boxes[dup] + torch.randn(n // 4, 4, generator=gen) * 2
        boxes[: n // 4, 2:] = torch.maximum(boxes[: n // 4, 2:], boxes[: n // 4, :2] + 0.5)
    scores = torch.rand(n, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    keep = torchvision.ops.batched_nms(boxes, scores, labels, iou)
    return ({"boxes": boxes.tolist(), "scores": scores.tolist(), "classes": labels.tolist(), "iou": iou},
            keep.tolist())


def main():
    gen = torch.Generator().manual_seed(20261127)
    cases, expected = [], []
    for n in (0, 1, 2, 10, 100, 500, 999, 1001, 3000):  # 1001 boxes = 4004 numbers: torchvision's per-class path
        for classes in (1, 3, 80):
            for iou in (0.3, 0.5, 0.7):
                case, keep = random_case(gen, n, classes, iou, spread=200.0 if n < 500 else 640.0)
                cases.append(case)
                expected.append(keep)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"cases": cases}, f)
        path = f.name
    try:
        got = json.loads(subprocess.run([os.environ["NMS_TOOL"], path], check=True, capture_output=True,
                                        text=True).stdout)
    finally:
        os.unlink(path)
    failures = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    for i in failures[:5]:
        c = cases[i]
        print(f"case {i}: n={len(c['scores'])} iou={c['iou']}: detkit kept {len(got[i])}, torchvision {len(expected[i])}")
    kept = sum(len(e) for e in expected)
    print(f"{len(cases) - len(failures)} passed, {len(failures)} failed ({kept} kept boxes compared; "
          f"torch {torch.__version__}, torchvision {torchvision.__version__})")
    return 1 if failures or len(got) != len(expected) else 0


if __name__ == "__main__":
    sys.exit(main())

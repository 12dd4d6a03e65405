"""The peer of detkit_bench_loader: the same default recipe in Python, as a PyTorch user would write it with
Debian's python3-torch DataLoader, PIL and torchvision transforms. Per sample: a 4-image mosaic (each image
decoded with PIL and resized so its longer side is imgsz, bilinear), the random scale/translate affine with
PIL's Image.transform (fill 114), torchvision's ColorJitter (hue 0.015, saturation 0.7, brightness 0.4), a
horizontal flip with probability 0.5, to_tensor as uint8, boxes moved with the pixels; collate into
images [B, 3, S, S] and targets [M, 6]. One warm-up epoch, then T trials of E epochs; prints one JSON line
with the median samples/s.

usage: torch_peer.py [--workers N] [--imgsz S] [--batch B] [--epochs E] [--trials T] VOC_DIR [SPLIT]
"""
import argparse
import json
import random
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image


def read_voc(root, split):
    root = Path(root)
    classes, records = [], []
    names = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    for xml in (root / "Annotations" / f"{name}.xml" for name in names):
        doc = ET.parse(xml).getroot()
        boxes = []
        for obj in doc.iter("object"):
            name = obj.findtext("name").strip()
            if name not in classes:
                classes.append(name)
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([classes.index(name), x1 - 1, y1 - 1, x2, y2])
        records.append((root / "JPEGImages" / doc.findtext("filename"), np.array(boxes, dtype=np.float32).reshape(-1, 5)))
    return records


class Mosaic(torch.utils.data.Dataset):
    def __init__(self, records, imgsz):
        self.records, self.s = records, imgsz
        self.jitter = T.ColorJitter(brightness=0.4, saturation=0.7, hue=0.015)

    def __len__(self):
        return len(self.records)

    def load(self, i):
        path, boxes = self.records[i]
        img = Image.open(path).convert("RGB")
        r = self.s / max(img.size)
        w, h = max(1, round(img.width * r)), max(1, round(img.height * r))
        sx, sy = w / img.width, h / img.height
        img = img.resize((w, h), Image.BILINEAR)
        boxes = boxes.copy()
        boxes[:, 1:] *= [sx, sy, sx, sy]
        return img, boxes

    def __getitem__(self, index):
        s = self.s
        xc, yc = (int(random.uniform(0.5 * s, 1.5 * s)) for _ in range(2))
        canvas = Image.new("RGB", (2 * s, 2 * s), (114, 114, 114))
        all_boxes = []
        for k, i in enumerate([index] + [random.randrange(len(self)) for _ in range(3)]):
            img, boxes = self.load(i)
            w, h = img.size
            x0 = xc - w if k in (0, 2) else xc
            y0 = yc - h if k in (0, 1) else yc
            canvas.paste(img, (x0, y0))  # PIL clips at the canvas edge
            boxes[:, [1, 3]] += x0
            boxes[:, [2, 4]] += y0
            all_boxes.append(boxes)
        boxes = np.concatenate(all_boxes)
        boxes[:, 1:] = boxes[:, 1:].clip(0, 2 * s)
        # Random scale (0.5..1.5) and translation (0.4..0.6 of the output) of the canvas centre.
        g = random.uniform(0.5, 1.5)
        tx, ty = random.uniform(0.4, 0.6) * s, random.uniform(0.4, 0.6) * s
        # PIL's AFFINE takes the inverse map: output (x, y) -> input (a x + b y + c, d x + e y + f).
        img = canvas.transform((s, s), Image.AFFINE, (1 / g, 0, s - tx / g, 0, 1 / g, s - ty / g),
                               Image.BILINEAR, fillcolor=(114, 114, 114))
        boxes[:, 1:] = (boxes[:, 1:] - s) * g + [tx, ty, tx, ty]
        boxes[:, 1:] = boxes[:, 1:].clip(0, s)
        keep = ((boxes[:, 3] - boxes[:, 1]) > 2) & ((boxes[:, 4] - boxes[:, 2]) > 2)
        boxes = boxes[keep]
        img = self.jitter(img)
        if random.random() < 0.5:
            img = TF.hflip(img)
            boxes[:, [1, 3]] = s - boxes[:, [3, 1]]
        return TF.pil_to_tensor(img), torch.from_numpy(boxes)


def collate(batch):
    images = torch.stack([b[0] for b in batch])
    targets = [torch.cat([torch.full((len(b[1]), 1), float(i)), b[1]], 1) for i, b in enumerate(batch)]
    return images, torch.cat(targets)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--imgsz", type=int, default=416)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("voc")
    ap.add_argument("split", nargs="?", default="train")
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = Mosaic(read_voc(a.voc, a.split), a.imgsz)
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         collate_fn=collate, persistent_workers=a.workers > 0)
    for _ in loader:  # warm-up: page cache, worker start
        pass
    rates = []
    for _ in range(a.trials):
        start, n = time.perf_counter(), 0
        for _ in range(a.epochs):
            for images, _targets in loader:
                n += images.shape[0]
        rates.append(n / (time.perf_counter() - start))
    rates.sort()
    print(json.dumps({"samples_per_s": round(rates[len(rates) // 2], 2), "workers": a.workers, "imgsz": a.imgsz,
                      "batch": a.batch, "images": len(data), "torch": torch.__version__,
                      "torchvision": torchvision.__version__, "PIL": Image.__version__}))


if __name__ == "__main__":
    main()

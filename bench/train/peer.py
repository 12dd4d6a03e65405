"""The Python peer of `detkit train` for the end-to-end training-throughput benchmark.

The same detector, loss, optimizer, schedule and data recipe that detkit's trainer runs, written the way a
competent PyTorch user writes them with Debian's python3-torch (1.13), torchvision and PIL. Written from
detkit's own description (src/models/yolo.cpp, loss.cpp, assigner.cpp, box_loss.cpp, src/train/trainer.cpp,
schedule.cpp), not copied from any other project.

- Model: the yolo-n/s/m family of src/models/yolo.cpp: ConvUnit (conv without bias + BatchNorm eps 1e-3,
  momentum 0.03 + SiLU), C2f, SPPF, PAN-FPN over strides 8/16/32, decoupled heads with reg_max 16 bins.
  `--check-params N` asserts the parameter count equals detkit's (`detkit model info --json`).
- Loss: task-aligned assignment (topk 10, alpha 0.5, beta 6) vectorised over the batch (padded [B, M, A]
  tensors), BCE / CIoU / DFL with gains 7.5 / 0.5 / 1.5, total multiplied by the batch size.
- Optimizer: SGD (Nesterov) or AdamW with three parameter groups (conv weights decayed by
  weight_decay * batch * accumulate / nominal_batch; norm weights and biases not), linear warmup (weights
  from 0, biases from warmup_bias_lr, momentum from warmup_momentum), cosine decay per epoch, gradient
  accumulation to nominal_batch, gradient-norm clipping at 10, EMA of weights and BatchNorm buffers each
  optimizer step with a decay ramp.
- Data: torch.utils.data.DataLoader, `--workers` worker processes, the default recipe of
  bench/loader/torch_peer.py (PIL decode, 4-image mosaic, random scale 0.5..1.5 and translate 0.1 with
  PIL's affine, ColorJitter HSV, flip 0.5, collate with variable box counts), imported from there.

Timing is taken the way detkit reports it in results.csv: an epoch's images divided by its wall time,
from the start of the epoch's loader iteration to the end of its last step (data included, no
evaluation). Also reported: the steady rate over the batches after the first `--warmup` batches of the run,
and the CPU time per image of each epoch (this process and its reaped worker processes).

On a GPU (`--device cuda`): the model, loss and optimizer run there, batches are copied from pinned
memory, tensors the loss creates are made on the device (`with torch.device(...)`, torch 2.x), and
`--amp bf16|fp16` runs forward and loss under autocast (fp16 with a GradScaler), as detkit's trainer does.

usage: peer.py [--format yolo|voc] [--imgsz S] [--batch B] [--workers W] [--threads T] [--epochs E]
               [--optimizer sgd|adamw] [--model yolo-n] [--device cpu|cuda] [--amp none|bf16|fp16] DATA [SPLIT]
  DATA: a YOLO data.yaml (`detkit synth --format yolo`) or a Pascal VOC directory.
Prints one JSON line.
"""
import argparse
import contextlib
import copy
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "loader"))
from torch_peer import Mosaic, collate, read_voc  # noqa: E402  (the loader benchmark's recipe)


# ----------------------------------------------------------------------------------------------- model

SCALES = {"yolo-n": (0.33, 0.25, 1024), "yolo-s": (0.33, 0.50, 1024), "yolo-m": (0.67, 0.75, 768)}


class ConvUnit(nn.Module):
    def __init__(self, c_in, c_out, k, s=1, plain=False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2, bias=plain)
        self.bn = None if plain else nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)

    def forward(self, x):
        x = self.conv(x)
        return x if self.bn is None else F.silu(self.bn(x))


class Bottleneck(nn.Module):
    def __init__(self, c, shortcut):
        super().__init__()
        self.cv1, self.cv2, self.shortcut = ConvUnit(c, c, 3), ConvUnit(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.shortcut else y


class C2f(nn.Module):
    def __init__(self, c_in, c_out, n, shortcut):
        super().__init__()
        h = c_out // 2
        self.cv1 = ConvUnit(c_in, 2 * h, 1)
        self.cv2 = ConvUnit((2 + n) * h, c_out, 1)
        self.m = nn.ModuleList(Bottleneck(h, shortcut) for _ in range(n))

    def forward(self, x):
        parts = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, 1))


class SPPF(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.cv1 = ConvUnit(c_in, c_in // 2, 1)
        self.cv2 = ConvUnit(c_in // 2 * 4, c_out, 1)

    def forward(self, x):
        a = self.cv1(x)
        b = F.max_pool2d(a, 5, 1, 2)
        c = F.max_pool2d(b, 5, 1, 2)
        d = F.max_pool2d(c, 5, 1, 2)
        return self.cv2(torch.cat([a, b, c, d], 1))


class Detector(nn.Module):
    strides = (8, 16, 32)

    def __init__(self, scale="yolo-n", classes=80, reg_max=16):
        super().__init__()
        depth_mult, width_mult, max_ch = SCALES[scale]
        ch = lambda c: int(math.ceil(min(c, max_ch) * width_mult / 8)) * 8  # noqa: E731
        depth = lambda n: max(1, int(math.floor(n * depth_mult + 0.5)))  # noqa: E731  (llround)
        c1, c2, c3, c4, c5 = ch(64), ch(128), ch(256), ch(512), ch(1024)
        self.backbone = nn.ModuleList([
            ConvUnit(3, c1, 3, 2), ConvUnit(c1, c2, 3, 2), C2f(c2, c2, depth(3), True),
            ConvUnit(c2, c3, 3, 2), C2f(c3, c3, depth(6), True),
            ConvUnit(c3, c4, 3, 2), C2f(c4, c4, depth(6), True),
            ConvUnit(c4, c5, 3, 2), C2f(c5, c5, depth(3), True), SPPF(c5, c5)])
        self.neck = nn.ModuleList([
            C2f(c5 + c4, c4, depth(3), False), C2f(c4 + c3, c3, depth(3), False), ConvUnit(c3, c3, 3, 2),
            C2f(c3 + c4, c4, depth(3), False), ConvUnit(c4, c4, 3, 2), C2f(c4 + c5, c5, depth(3), False)])
        self.reg_max, self.classes = reg_max, classes
        box_ch, cls_ch = max(16, c3 // 4, 4 * reg_max), max(c3, min(classes, 100))
        self.box_heads, self.cls_heads = nn.ModuleList(), nn.ModuleList()
        for c, stride in zip((c3, c4, c5), self.strides):
            box = nn.Sequential(ConvUnit(c, box_ch, 3), ConvUnit(box_ch, box_ch, 3), ConvUnit(box_ch, 4 * reg_max, 1, plain=True))
            cls = nn.Sequential(ConvUnit(c, cls_ch, 3), ConvUnit(cls_ch, cls_ch, 3), ConvUnit(cls_ch, classes, 1, plain=True))
            with torch.no_grad():
                box[2].conv.bias.fill_(1.0)
                cls[2].conv.bias.fill_(math.log(5.0 / classes / (640.0 / stride) ** 2))
            self.box_heads.append(box)
            self.cls_heads.append(cls)
        # Counted like detkit's (a non-trainable parameter), so the parameter counts compare.
        self.bins = nn.Parameter(torch.arange(reg_max, dtype=torch.float32), requires_grad=False)

    def forward(self, x):
        taps = []
        for i, m in enumerate(self.backbone):
            x = m(x)
            if i in (4, 6, 9):
                taps.append(x)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest")  # noqa: E731
        n4 = self.neck[0](torch.cat([up(taps[2]), taps[1]], 1))
        p3 = self.neck[1](torch.cat([up(n4), taps[0]], 1))
        p4 = self.neck[3](torch.cat([self.neck[2](p3), n4], 1))
        p5 = self.neck[5](torch.cat([self.neck[4](p4), taps[2]], 1))
        return [(self.box_heads[i](p), self.cls_heads[i](p)) for i, p in enumerate((p3, p4, p5))]


# ------------------------------------------------------------------------------------------------ loss

def make_anchors(shapes, strides):
    points, stride_col = [], []
    for (h, w), s in zip(shapes, strides):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5, torch.arange(w, dtype=torch.float32) + 0.5,
                                indexing="ij")
        points.append(torch.stack([xs, ys], -1).view(-1, 2))
        stride_col.append(torch.full((h * w, 1), float(s)))
    return torch.cat(points), torch.cat(stride_col)


def ciou(a, b, eps=1e-7):
    ax1, ay1, ax2, ay2 = a.unbind(-1)
    bx1, by1, bx2, by2 = b.unbind(-1)
    aw, ah, bw, bh = ax2 - ax1, ay2 - ay1 + eps, bx2 - bx1, by2 - by1 + eps
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp(min=0) * \
            (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp(min=0)
    iou = inter / (aw * ah + bw * bh - inter + eps)
    cw = torch.maximum(ax2, bx2) - torch.minimum(ax1, bx1)
    ch = torch.maximum(ay2, by2) - torch.minimum(ay1, by1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((bx1 + bx2 - ax1 - ax2).pow(2) + (by1 + by2 - ay1 - ay2).pow(2)) / 4
    v = (4 / math.pi ** 2) * (torch.atan(bw / bh) - torch.atan(aw / ah)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@torch.no_grad()
def assign(scores, pred, anchors, gt_labels, gt_boxes, gt_mask, topk=10, alpha=0.5, beta=6.0, eps=1e-9):
    """Task-aligned assignment for the whole batch at once. scores [B, A, C] (sigmoid), pred [B, A, 4] px,
    anchors [A, 2] px, gt_labels [B, M] long, gt_boxes [B, M, 4] px, gt_mask [B, M] bool.
    Returns target boxes [B, A, 4], target scores [B, A, C], foreground [B, A]."""
    b, a, c = scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return torch.zeros(b, a, 4), torch.zeros(b, a, c), torch.zeros(b, a, dtype=torch.bool)
    gx1, gy1, gx2, gy2 = (t.unsqueeze(-1) for t in gt_boxes.unbind(-1))  # [B, M, 1]
    ax, ay = anchors[:, 0], anchors[:, 1]
    inside = torch.minimum(torch.minimum(ax - gx1, ay - gy1), torch.minimum(gx2 - ax, gy2 - ay)) > eps
    inside &= gt_mask.unsqueeze(-1)  # [B, M, A]
    px1, py1, px2, py2 = (t.unsqueeze(1) for t in pred.unbind(-1))  # [B, 1, A]
    inter = (torch.minimum(gx2, px2) - torch.maximum(gx1, px1)).clamp(min=0) * \
            (torch.minimum(gy2, py2) - torch.maximum(gy1, py1)).clamp(min=0)
    area_g = (gx2 - gx1).clamp(min=0) * (gy2 - gy1).clamp(min=0)
    area_p = (px2 - px1).clamp(min=0) * (py2 - py1).clamp(min=0)
    iou = torch.where(inside, inter / (area_g + area_p - inter + eps), 0.0)
    cls_scores = scores.gather(2, gt_labels.unsqueeze(1).expand(b, a, m)).transpose(1, 2)  # [B, M, A]
    metric = torch.where(inside, cls_scores.pow(alpha) * iou.pow(beta), 0.0)
    top = metric.topk(min(topk, a), dim=2).indices
    claimed = torch.zeros_like(inside).scatter_(2, top, True) & (metric > 0)
    winner = torch.where(claimed, iou, -1.0).argmax(1)  # [B, A]
    fg = claimed.any(1)
    won = (torch.arange(m).view(1, m, 1) == winner.unsqueeze(1)) & fg.unsqueeze(1)
    won_metric = torch.where(won, metric, 0.0)
    best_metric = won_metric.amax(2, keepdim=True)
    best_iou = torch.where(won, iou, 0.0).amax(2, keepdim=True)
    alignment = (won_metric * best_iou / (best_metric + eps)).amax(1)  # [B, A]
    labels = gt_labels.gather(1, winner)
    boxes = torch.where(fg.unsqueeze(-1), gt_boxes.gather(1, winner.unsqueeze(-1).expand(b, a, 4)), 0.0)
    target_scores = torch.zeros(b, a, c).scatter_(2, labels.unsqueeze(-1), torch.where(fg, alignment, 0.0).unsqueeze(-1))
    return boxes, target_scores, fg


def pad_targets(targets, batch):
    """[N, 6] (image, class, x1, y1, x2, y2) -> labels [B, M], boxes [B, M, 4], mask [B, M]."""
    image = targets[:, 0].long()
    counts = torch.bincount(image, minlength=batch)
    m = int(counts.max()) if len(targets) else 0
    labels = torch.zeros(batch, m, dtype=torch.long)
    boxes = torch.zeros(batch, m, 4)
    mask = torch.zeros(batch, m, dtype=torch.bool)
    if m:
        order = image.argsort(stable=True)
        image = image[order]
        slot = torch.arange(len(image)) - (counts.cumsum(0) - counts)[image]
        rows = targets[order]
        labels[image, slot] = rows[:, 1].long()
        boxes[image, slot] = rows[:, 2:]
        mask[image, slot] = True
    return labels, boxes, mask


class DetectionLoss:
    def __init__(self, reg_max=16, gains=(7.5, 0.5, 1.5)):
        self.reg_max, self.gains = reg_max, gains
        self.bins = torch.arange(reg_max, dtype=torch.float32)
        self.anchor_cache = {}

    def __call__(self, outputs, targets):
        r = self.reg_max
        b = outputs[0][0].shape[0]
        shapes = tuple(tuple(box.shape[2:]) for box, _ in outputs)
        if shapes not in self.anchor_cache:
            self.anchor_cache[shapes] = make_anchors(shapes, Detector.strides)
        anchors, strides = self.anchor_cache[shapes]
        dist = torch.cat([box.flatten(2) for box, _ in outputs], 2).transpose(1, 2)    # [B, A, 4r]
        logits = torch.cat([cls.flatten(2) for _, cls in outputs], 2).transpose(1, 2)  # [B, A, C]
        a = dist.shape[1]
        d = (dist.view(b, a, 4, r).softmax(-1) * self.bins).sum(-1)
        pred = torch.cat([anchors - d[..., :2], anchors + d[..., 2:]], -1)  # grid units
        labels, boxes, mask = pad_targets(targets, b)
        t_boxes, t_scores, fg = assign(logits.detach().sigmoid(), pred.detach() * strides, anchors * strides,
                                       labels, boxes, mask)
        score_sum = t_scores.sum().clamp(min=1)
        cls = F.binary_cross_entropy_with_logits(logits, t_scores, reduction="sum") / score_sum
        weight = t_scores.sum(-1)[fg]
        t_boxes = (t_boxes / strides)[fg]
        box = ((1 - ciou(pred[fg], t_boxes)) * weight).sum() / score_sum
        anchors_fg = anchors.expand(b, a, 2)[fg]
        t_dist = torch.cat([anchors_fg - t_boxes[:, :2], t_boxes[:, 2:] - anchors_fg], -1).clamp(0, r - 1.01)
        left = t_dist.long().clamp(0, r - 2)
        w_left = (left + 1).float() - t_dist
        side_logits = dist[fg].view(-1, r)
        left, w_left = left.view(-1), w_left.view(-1)
        dfl = (F.cross_entropy(side_logits, left, reduction="none") * w_left +
               F.cross_entropy(side_logits, left + 1, reduction="none") * (1 - w_left)).view(-1, 4).mean(-1)
        dfl = (dfl * weight).sum() / score_sum
        total = (self.gains[0] * box + self.gains[1] * cls + self.gains[2] * dfl) * b
        return total, torch.stack([box, cls, dfl]).detach()


# ------------------------------------------------------------------------------------- optimizer, EMA

class Schedule:
    def __init__(self, lr0, lrf, momentum, warmup_momentum, warmup_bias_lr, epochs, warmup_iterations):
        self.__dict__.update(locals())

    def decay(self, epoch):
        t = min(max(epoch / max(self.epochs - 1, 1), 0.0), 1.0)
        return self.lrf + (1 - self.lrf) * 0.5 * (1 + math.cos(math.pi * t))

    def lr(self, group, iteration, epoch):  # group 0 weights, 1 norms, 2 biases
        target = self.lr0 * self.decay(epoch)
        if iteration >= self.warmup_iterations:
            return target
        start = self.warmup_bias_lr if group == 2 else 0.0
        return start + (target - start) * iteration / self.warmup_iterations

    def mom(self, iteration):
        if iteration >= self.warmup_iterations:
            return self.momentum
        return self.warmup_momentum + (self.momentum - self.warmup_momentum) * iteration / self.warmup_iterations


class EMA:
    def __init__(self, model, decay=0.9999):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 2000))
        for e, s in zip(self.model.parameters(), model.parameters()):
            e.mul_(d).add_(s.detach(), alpha=1 - d)
        for e, s in zip(self.model.buffers(), model.buffers()):
            if e.is_floating_point():
                e.mul_(d).add_(s, alpha=1 - d)
            else:
                e.copy_(s)


def build_optimizer(model, kind, lr0, momentum, weight_decay):
    weights, norms, biases = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (biases if name.endswith("bias") else norms if p.dim() <= 1 else weights).append(p)
    if kind == "sgd":
        opt = torch.optim.SGD([{"params": weights, "weight_decay": weight_decay}, {"params": norms, "weight_decay": 0.0},
                               {"params": biases, "weight_decay": 0.0}], lr=lr0, momentum=momentum, nesterov=True)
    else:
        opt = torch.optim.AdamW([{"params": weights, "weight_decay": weight_decay}, {"params": norms, "weight_decay": 0.0},
                                 {"params": biases, "weight_decay": 0.0}], lr=lr0, betas=(momentum, 0.999))
    return opt, weights + norms + biases


# ------------------------------------------------------------------------------------------------ data

def read_yolo(data_yaml, split):
    """Records (image path, float32 [n, 5]: class, x1, y1, x2, y2 in pixels) of a YOLO data.yaml's split,
    the format bench/loader/torch_peer.py's Mosaic takes. Returns (records, class names)."""
    root = Path(data_yaml).parent
    keys, names = {}, {}
    section = None
    for line in Path(data_yaml).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(" ") and section == "names":
            k, v = line.strip().split(":", 1)
            names[int(k)] = v.strip()
            continue
        k, _, v = line.partition(":")
        section = k.strip()
        keys[section] = v.strip()
    base = root / keys.get("path", ".")
    image_dir = base / keys[split]
    # YOLO's rule: the label of .../images/.../x.jpg is .../labels/.../x.txt (the last 'images' part).
    parts = list(image_dir.parts)
    at = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    label_dir = Path(*parts[:at], "labels", *parts[at + 1:]) if at is not None else image_dir
    records = []
    for path in sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")):
        with Image.open(path) as im:
            w, h = im.size
        rows = []
        label = label_dir / (path.stem + ".txt")
        if label.exists():
            for line in label.read_text().split("\n"):
                if line.strip():
                    c, cx, cy, bw, bh = (float(v) for v in line.split()[:5])
                    rows.append([c, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
        records.append((path, np.array(rows, dtype=np.float32).reshape(-1, 5)))
    return records, [names[k] for k in sorted(names)]


# ------------------------------------------------------------------------------------------------ main

def cpu_seconds():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("split", nargs="?", default="train")
    ap.add_argument("--format", choices=["auto", "yolo", "voc"], default="auto")
    ap.add_argument("--model", default="yolo-n")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--nominal-batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3, help="batches left out of the steady rate")
    ap.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    ap.add_argument("--lr0", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.937)
    ap.add_argument("--weight-decay", type=float, default=0.0005)
    ap.add_argument("--warmup-epochs", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-params", type=int, default=0, help="fail unless the model has this many parameters")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--amp", choices=["none", "bf16", "fp16"], default="none", help="autocast for forward and loss")
    ap.add_argument("--channels-last", action="store_true", help="model and images in NHWC memory order")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    fmt = a.format if a.format != "auto" else ("yolo" if a.data.endswith((".yaml", ".yml")) else "voc")
    if fmt == "yolo":
        records, names = read_yolo(a.data, a.split)
    else:
        records = read_voc(a.data, a.split)
        names = sorted({int(c) for _, boxes in records for c in boxes[:, 0]})
    classes = len(names)

    device = torch.device(a.device)
    on_device = (lambda: torch.device(device)) if device.type != "cpu" else contextlib.nullcontext
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)
    scaler = torch.cuda.amp.GradScaler() if a.amp == "fp16" else None
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    model = Detector(a.model, classes).to(device, memory_format=memory_format)
    params = sum(p.numel() for p in model.parameters())
    if a.check_params and params != a.check_params:
        sys.exit(f"parameter count {params} differs from detkit's {a.check_params}")
    ema = EMA(model)
    accumulate = max(1, round(a.nominal_batch / a.batch))
    decay = a.weight_decay * a.batch * accumulate / a.nominal_batch
    opt, trainable = build_optimizer(model, a.optimizer, a.lr0, a.momentum, decay)
    criterion = DetectionLoss(model.reg_max)
    if device.type != "cpu":
        criterion.bins = criterion.bins.to(device)

    dataset = Mosaic(records, a.imgsz)
    loader = torch.utils.data.DataLoader(dataset, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         collate_fn=collate, pin_memory=device.type == "cuda")
    nb = len(loader)
    sched = Schedule(a.lr0, 0.01, a.momentum, 0.8, 0.1, a.epochs,
                     min(round(a.warmup_epochs * nb), nb * a.epochs // 2))

    epochs, step_ends, images_seen = [], [], []
    accumulated, run_start = 0, time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        start, cpu_start, images, sums = time.perf_counter(), cpu_seconds(), 0, torch.zeros(3)
        for i, (imgs, targets) in enumerate(loader):
            it = epoch * nb + i
            for g, group in enumerate(opt.param_groups):
                group["lr"] = sched.lr(g, it, epoch)
                if a.optimizer == "sgd":
                    group["momentum"] = sched.mom(it)
                else:
                    group["betas"] = (sched.mom(it), group["betas"][1])
            x = imgs.to(device, non_blocking=True).float().div_(255).contiguous(memory_format=memory_format)
            targets = targets.to(device, non_blocking=True)
            autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
            with on_device(), autocast:
                loss, terms = criterion(model(x), targets)
            if not math.isfinite(loss.item()):
                opt.zero_grad()
                continue
            (scaler.scale(loss) if scaler else loss).backward()
            sums += terms.float().cpu() * len(imgs)
            images += len(imgs)
            accumulated += 1
            if accumulated >= accumulate or i + 1 == nb:
                if scaler:
                    scaler.unscale_(opt)
                norm = nn.utils.clip_grad_norm_(trainable, 10.0)
                if scaler:
                    scaler.step(opt)  # skips the step itself when the gradients are not finite
                    scaler.update()
                    if math.isfinite(norm):
                        ema.update(model)
                elif math.isfinite(norm):
                    opt.step()
                    ema.update(model)
                opt.zero_grad()
                accumulated = 0
            step_ends.append(time.perf_counter())
            images_seen.append(len(imgs))
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu_start  # workers are reaped at the end of the epoch, so they count
        box, cls, dfl = (sums / max(images, 1)).tolist()
        epochs.append({"epoch": epoch + 1, "images": images, "seconds": round(seconds, 3),
                       "images_per_second": round(images / seconds, 3), "cpu_ms_per_image": round(1000 * cpu / images, 1),
                       "box": round(box, 4), "cls": round(cls, 4), "dfl": round(dfl, 4)})
        print(json.dumps(epochs[-1]), file=sys.stderr, flush=True)
    w = min(a.warmup, len(step_ends) - 1)
    steady = sum(images_seen[w + 1:]) / (step_ends[-1] - step_ends[w])
    print(json.dumps({"side": "peer", "parameters": params, "classes": classes, "images": len(dataset),
                      "batches_per_epoch": nb, "accumulate": accumulate, "steady_images_per_second": round(steady, 3),
                      "epochs": epochs, "seconds": round(time.perf_counter() - run_start, 1),
                      "torch": torch.__version__, "torchvision": torchvision.__version__, "PIL": Image.__version__,
                      "threads": torch.get_num_threads(), "workers": a.workers, "device": str(device), "amp": a.amp}))


if __name__ == "__main__":
    main()

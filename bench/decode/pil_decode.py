#!/usr/bin/python3
"""The peer of detkit_bench_decode: Debian's python3 PIL decoding the same files on the same core count.

    pil_decode.py [--threads N] [--passes P] [--trials T] [--half [--no-draft]] DIR...

N worker processes (PIL holds the GIL outside the codec, so processes, PIL's best case) decode every
image P times per trial, after a warm-up pass. Full size: Image.open + load (+ convert to RGB only when
the file is not RGB). --half: PIL's own fast path for a half-size target, Image.draft (libjpeg's DCT
scaling, the same libjpeg-turbo detkit uses) and a resize only when draft did not land on the size.
--half --no-draft: the path most Python data loaders take, a full decode then resize(BILINEAR).
Prints one JSON object in the same shape as detkit_bench_decode. cpu_ms_per_image counts only the CPU time
inside decode() in the workers (not the pool's pickling), which favours PIL slightly.
"""
import argparse
import json
import os
import sys
import time
from multiprocessing import Pool

from PIL import Image


def decode(job):
    start = time.process_time()
    path, half, draft = job
    im = Image.open(path)
    if half:
        target = (im.size[0] // 2, im.size[1] // 2)
        if draft:
            im.draft("RGB", target)
        if im.size != target:
            im = im.resize(target, Image.BILINEAR)
    im.load()
    if im.mode != "RGB":
        im = im.convert("RGB")
    return time.process_time() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--half", action="store_true")
    ap.add_argument("--no-draft", action="store_true")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    files = sorted(os.path.join(d, f) for d in a.dirs for f in os.listdir(d)
                   if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if not files:
        sys.exit("no images found")
    jobs = [(f, a.half, not a.no_draft) for f in files]
    chunk = max(1, len(jobs) // (a.threads * 8))
    with Pool(a.threads) as pool:
        pool.map(decode, jobs, chunksize=chunk)  # warm-up: workers started, page cache filled
        rates, cpu_ms = [], []
        for _ in range(a.trials):
            start = time.perf_counter()
            cpu = 0.0
            for _ in range(a.passes):
                cpu += sum(pool.map(decode, jobs, chunksize=chunk))
            rates.append(len(files) * a.passes / (time.perf_counter() - start))
            cpu_ms.append(cpu * 1000 / (len(files) * a.passes))
    rates.sort()
    cpu_ms.sort()
    print(json.dumps({"decoder": "PIL " + Image.__version__, "images": len(files), "threads": a.threads,
                      "passes": a.passes, "half": a.half, "draft": a.half and not a.no_draft,
                      "images_per_s": round(rates[len(rates) // 2], 1),
                      "cpu_ms_per_image": round(cpu_ms[len(cpu_ms) // 2], 3),
                      "trials": [round(r, 1) for r in rates]}))


if __name__ == "__main__":
    main()

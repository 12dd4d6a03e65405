"""Helpers of bench/train/run.sh.

  bench.py detkit DETKIT RUN_DIR -- ARGS...   runs `DETKIT train ARGS project=... name=...`, samples the
      process's CPU time (all threads, /proc/PID/stat) each time results.csv is rewritten (once per epoch),
      and prints one JSON line with detkit's per-epoch figures (from results.csv) and CPU ms per image.
  bench.py tag DATASET LOAD_BEFORE < LINE      adds the dataset name and the load averages (before, after)
      to a JSON line.
  bench.py table RESULTS.jsonl                 prints the comparison table from the JSON lines of both sides.

A run's figure is the mean images/s of its epochs after the first (the first includes warm-up: page cache,
allocator, thread start); of the rounds, the best is taken.
"""
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def cpu_of(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_detkit(detkit, run_dir, args):
    run_dir = Path(run_dir)
    cmd = [detkit, "train", *args, f"project={run_dir.parent}", f"name={run_dir.name}"]
    log = open(str(run_dir) + ".log", "w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    csv_path = run_dir / "results.csv"
    seen, marks = None, []
    last_cpu = 0.0
    while proc.poll() is None:
        cpu = cpu_of(proc.pid)
        if cpu is not None:
            last_cpu = cpu
        try:
            stamp = csv_path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp != seen:
            seen = stamp
            marks.append(last_cpu)
        time.sleep(0.05)
    if proc.returncode != 0:
        sys.exit(f"detkit train failed ({proc.returncode}); see {run_dir}.log")
    rows = list(csv.DictReader(open(csv_path)))
    epochs = []
    for i, row in enumerate(rows):
        images = round(float(row["images_per_second"]) * float(row["seconds"]))
        entry = {"epoch": int(row["epoch"]), "images": images, "seconds": float(row["seconds"]),
                 "images_per_second": float(row["images_per_second"]),
                 "data_wait_share": float(row["data_wait_share"]),
                 "box": float(row["box_loss"]), "cls": float(row["cls_loss"]), "dfl": float(row["dfl_loss"])}
        # CPU between two rewrites of results.csv: one epoch (and the previous epoch's checkpoint).
        if len(marks) == len(rows) and i > 0:
            entry["cpu_ms_per_image"] = round(1000 * (marks[i] - marks[i - 1]) / images, 1)
        epochs.append(entry)
    print(json.dumps({"side": "detkit", "epochs": epochs, "seconds": round(time.perf_counter() - start, 1),
                      "command": " ".join(cmd)}))


def figure(run):
    later = run["epochs"][1:] or run["epochs"]
    ips = sum(e["images"] for e in later) / sum(e["seconds"] for e in later)
    cpu = [e["cpu_ms_per_image"] for e in later if "cpu_ms_per_image" in e]
    return ips, (sum(cpu) / len(cpu) if cpu else None)


def table(path):
    runs = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            runs.setdefault((r["dataset"], r["side"]), []).append(r)
    print("| dataset | side | img/s per run (epochs 2..N) | median img/s | best img/s | CPU ms/image (best) | load avg during runs |")
    print("|---|---|---|---|---|---|---|")
    best = {}
    for (dataset, side), rs in runs.items():
        figs = [figure(r) for r in rs]
        ips = max(f[0] for f in figs)
        middle = statistics.median(f[0] for f in figs)
        cpus = [f[1] for f in figs if f[1] is not None]
        best[(dataset, side)] = (ips, min(cpus) if cpus else None, middle)
        loads = ", ".join(r.get("load", "?") for r in rs)
        cpu = f"{min(cpus):.0f}" if cpus else "-"
        print(f"| {dataset} | {side} | {', '.join(f'{f[0]:.2f}' for f in figs)} | {middle:.2f} | {ips:.2f} | {cpu} | {loads} |")
    print()
    # The machine's noise moves single runs by +-15 %: the median of several runs is the figure to quote,
    # the best runs' ratio is an upper bound.
    for dataset in dict.fromkeys(d for d, _ in runs):
        if (dataset, "detkit") in best and (dataset, "peer") in best:
            d, p = best[(dataset, "detkit")], best[(dataset, "peer")]
            cpu = f", CPU time per image {p[1] / d[1]:.2f}x" if d[1] and p[1] else ""
            print(f"{dataset}: median detkit {d[2]:.2f} img/s, peer {p[2]:.2f} img/s, ratio {d[2] / p[2]:.2f}x; "
                  f"best {d[0]:.2f} / {p[0]:.2f}, ratio {d[0] / p[0]:.2f}x (target 1.3x){cpu}")


if __name__ == "__main__":
    if sys.argv[1] == "detkit":
        sep = sys.argv.index("--")
        run_detkit(sys.argv[2], sys.argv[3], sys.argv[sep + 1:])
    elif sys.argv[1] == "tag":
        for line in sys.stdin:
            if line.strip().startswith("{"):
                r = json.loads(line)
                after = open("/proc/loadavg").read().split()[0]
                r.update(dataset=sys.argv[2], load=f"{sys.argv[3]}->{after}")
                print(json.dumps(r), flush=True)
    elif sys.argv[1] == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
